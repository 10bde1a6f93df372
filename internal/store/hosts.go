package store

import (
	"context"
	"fmt"
)

// CreateHost inserts h, filling ID and timestamps.
func (s *Store) CreateHost(ctx context.Context, h *Host) error {
	if h.ID == "" {
		h.ID = NewID()
	}
	h.CreatedAt, h.UpdatedAt = s.now(), s.now()
	if h.Warnings == nil {
		h.Warnings = []string{}
	}
	if h.Flags == nil {
		h.Flags = map[string]bool{}
	}
	if _, err := s.DB.NewInsert().Model(h).Exec(ctx); err != nil {
		return writeError("insert host "+h.Name, err)
	}
	return nil
}

// GetHost loads a host by ID.
func (s *Store) GetHost(ctx context.Context, id string) (*Host, error) {
	h := new(Host)
	// Every step reads its host: prepared (prepared.go).
	err := s.queryRow(ctx, "get host", func() string {
		return s.DB.NewSelect().Model((*Host)(nil)).Where("id = ?", s.ph(1)).String()
	}, h, id)
	if err != nil {
		return nil, notFound(err, "host "+id)
	}
	return h, nil
}

// GetHostByName loads a host by its unique name.
func (s *Store) GetHostByName(ctx context.Context, name string) (*Host, error) {
	h := new(Host)
	if err := s.DB.NewSelect().Model(h).Where("name = ?", name).Scan(ctx); err != nil {
		return nil, notFound(err, "host "+name)
	}
	return h, nil
}

// ListHosts returns every host, oldest first.
func (s *Store) ListHosts(ctx context.Context) ([]Host, error) {
	var hosts []Host
	if err := s.DB.NewSelect().Model(&hosts).Order("created_at ASC").Scan(ctx); err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	return hosts, nil
}

// UpdateHost writes the probe results and status of h.
func (s *Store) UpdateHost(ctx context.Context, h *Host) error {
	h.UpdatedAt = s.now()
	_, err := s.DB.NewUpdate().Model(h).
		Column("admin_url", "public_url", "version", "profile", "status", "status_message", "warnings", "flags", "probed_at", "updated_at").
		WherePK().Exec(ctx)
	if err != nil {
		return fmt.Errorf("update host %s: %w", h.ID, err)
	}
	return nil
}
