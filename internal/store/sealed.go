package store

import (
	"context"
	"fmt"
)

// Sealed is one stored secret and what it belongs to (for messages; never the value).
type Sealed struct {
	Owner string // "host prod (admin key)", "item 3 of batch <id>"
	Value string // the sealed value
}

// SealedSamples returns stored secrets to check a master key against: the admin
// credentials of every host (hosts are few) and the upstream keys of the newest items
// (at most items of them). A process compares them with its key at start.
func (s *Store) SealedSamples(ctx context.Context, items int) ([]Sealed, error) {
	var hosts []Host
	if err := s.DB.NewSelect().Model(&hosts).Column("name", "admin_key_enc", "admin_password_enc").Order("created_at ASC").Scan(ctx); err != nil {
		return nil, fmt.Errorf("read host secrets: %w", err)
	}
	var out []Sealed
	for _, h := range hosts {
		if h.AdminKeyEnc != "" {
			out = append(out, Sealed{Owner: "host " + h.Name + " (admin key)", Value: h.AdminKeyEnc})
		}
		if h.AdminPasswordEnc != "" {
			out = append(out, Sealed{Owner: "host " + h.Name + " (admin password)", Value: h.AdminPasswordEnc})
		}
	}
	if items > 0 {
		var rows []Item
		if err := s.DB.NewSelect().Model(&rows).Column("batch_id", "idx", "api_key_enc").Where("api_key_enc <> ''").
			Order("created_at DESC").Limit(int64(items)).Scan(ctx); err != nil {
			return nil, fmt.Errorf("read item secrets: %w", err)
		}
		for _, it := range rows {
			out = append(out, Sealed{Owner: fmt.Sprintf("item %d of batch %s (API key)", it.Idx+1, it.BatchID), Value: it.APIKeyEnc})
		}
	}
	return out, nil
}
