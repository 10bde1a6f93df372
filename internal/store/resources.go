package store

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// EnsureIntent records that a host object named r.Name of type r.Type is about to be
// created, before the host is called (write-ahead). If a row with that name already
// exists (an earlier attempt, or a crash after the create), it is returned instead, so the
// caller can adopt rather than create again.
func (s *Store) EnsureIntent(ctx context.Context, r *Resource) (*Resource, error) {
	now := s.now()
	if r.ID == "" {
		r.ID = NewID()
	}
	r.CreatedAt, r.UpdatedAt = now, now
	if r.State == "" {
		r.State = ResourceIntent
	}
	if r.Details == nil {
		r.Details = map[string]any{}
	}
	if _, err := s.DB.NewInsert().Model(r).On("CONFLICT (host_id, resource_type, name) DO NOTHING").Exec(ctx); err != nil {
		return nil, fmt.Errorf("ledger intent %s %s: %w", r.Type, r.Name, err)
	}
	got := new(Resource)
	if err := s.DB.NewSelect().Model(got).Where("host_id = ?", r.HostID).Where("resource_type = ?", r.Type).
		Where("name = ?", r.Name).Scan(ctx); err != nil {
		return nil, fmt.Errorf("ledger read %s %s: %w", r.Type, r.Name, err)
	}
	return got, nil
}

// MarkCreated records the host ID of a ledger row after the host confirmed it.
func (s *Store) MarkCreated(ctx context.Context, r *Resource, hostID string, state string) error {
	r.HostResourceID = &hostID
	r.State = state
	r.UpdatedAt = s.now()
	q := s.DB.NewUpdate().Model(r).Column("host_resource_id", "state", "secret_enc", "details", "parent_id", "batch_id", "item_id", "updated_at").WherePK()
	if state == ResourceAdopted {
		// Items racing on a shared object (the managed user): one creates it, another finds
		// it a moment later. Finding must never relabel what this system created as
		// adopted, or rollback would keep it.
		q = q.Where("state <> ?", ResourceCreated)
	}
	_, err := q.Exec(ctx)
	if err != nil {
		return fmt.Errorf("ledger mark %s %s created: %w", r.Type, r.Name, err)
	}
	return nil
}

// SetResourceState updates the state of a ledger row.
func (s *Store) SetResourceState(ctx context.Context, r *Resource, state string) error {
	r.State = state
	r.UpdatedAt = s.now()
	_, err := s.DB.NewUpdate().Model(r).Column("state", "updated_at").WherePK().Exec(ctx)
	if err != nil {
		return fmt.Errorf("ledger set %s %s %s: %w", r.Type, r.Name, state, err)
	}
	return nil
}

// ResourceFilter selects ledger rows.
type ResourceFilter struct {
	HostID, BatchID, ItemID, Type, State string
	Limit, Offset                        int
}

// ListResources returns ledger rows, oldest first.
func (s *Store) ListResources(ctx context.Context, f ResourceFilter) ([]Resource, int, error) {
	var out []Resource
	q := s.DB.NewSelect().Model(&out).Order("created_at ASC", "id ASC")
	for col, v := range map[string]string{"host_id": f.HostID, "batch_id": f.BatchID, "item_id": f.ItemID, "resource_type": f.Type, "state": f.State} {
		if v != "" {
			q = q.Where("? = ?", bun.Ident(col), v)
		}
	}
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	total, err := q.Limit(int64(f.Limit)).Offset(int64(f.Offset)).ScanAndCount(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("list resources: %w", err)
	}
	return out, int(total), nil
}

// UpdateResourceDetails stores a row's state and details (rollback outcome, reconcile notes).
func (s *Store) UpdateResourceDetails(ctx context.Context, r *Resource) error {
	r.UpdatedAt = s.now()
	_, err := s.DB.NewUpdate().Model(r).Column("state", "details", "updated_at").WherePK().Exec(ctx)
	if err != nil {
		return fmt.Errorf("ledger update %s %s: %w", r.Type, r.Name, err)
	}
	return nil
}
