package store

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// Resealer re-encrypts one sealed value under a new master key.
type Resealer interface {
	Reseal(sealed string) (string, error)
	// Refingerprint returns the new fingerprint of a sealed upstream key.
	Refingerprint(sealed string) (string, error)
}

// RotateSecrets re-encrypts every sealed column (host credentials, upstream keys, ledger
// secrets, webhook URLs and signing secrets) and recomputes key fingerprints in one
// transaction: either every value moves to the new master key or none does. It returns
// how many values were re-encrypted.
func (s *Store) RotateSecrets(ctx context.Context, r Resealer) (int, error) {
	n := 0
	err := s.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var hosts []Host
		if err := tx.NewSelect().Model(&hosts).Scan(ctx); err != nil {
			return err
		}
		for i := range hosts {
			h := &hosts[i]
			var err error
			if h.AdminKeyEnc, err = reseal(r, h.AdminKeyEnc, &n); err != nil {
				return fmt.Errorf("host %s admin key: %w", h.Name, err)
			}
			if h.AdminPasswordEnc, err = reseal(r, h.AdminPasswordEnc, &n); err != nil {
				return fmt.Errorf("host %s admin password: %w", h.Name, err)
			}
			if _, err := tx.NewUpdate().Model(h).Column("admin_key_enc", "admin_password_enc").WherePK().Exec(ctx); err != nil {
				return err
			}
		}
		var items []Item
		if err := tx.NewSelect().Model(&items).Column("id", "api_key_enc", "key_fingerprint").Scan(ctx); err != nil {
			return err
		}
		for i := range items {
			it := &items[i]
			fp, err := r.Refingerprint(it.APIKeyEnc)
			if err != nil {
				return fmt.Errorf("item %s key: %w", it.ID, err)
			}
			if it.APIKeyEnc, err = reseal(r, it.APIKeyEnc, &n); err != nil {
				return fmt.Errorf("item %s key: %w", it.ID, err)
			}
			it.KeyFingerprint = fp
			if _, err := tx.NewUpdate().Model(it).Column("api_key_enc", "key_fingerprint").WherePK().Exec(ctx); err != nil {
				return err
			}
		}
		var rows []Resource
		if err := tx.NewSelect().Model(&rows).Column("id", "secret_enc").Where("secret_enc <> ''").Scan(ctx); err != nil {
			return err
		}
		for i := range rows {
			var err error
			if rows[i].SecretEnc, err = reseal(r, rows[i].SecretEnc, &n); err != nil {
				return fmt.Errorf("ledger row %s: %w", rows[i].ID, err)
			}
			if _, err := tx.NewUpdate().Model(&rows[i]).Column("secret_enc").WherePK().Exec(ctx); err != nil {
				return err
			}
		}
		return rotateWebhooks(ctx, tx, r, &n)
	})
	if err != nil {
		return 0, fmt.Errorf("rotate secrets: %w", err)
	}
	return n, nil
}

func reseal(r Resealer, sealed string, n *int) (string, error) {
	if sealed == "" {
		return "", nil
	}
	out, err := r.Reseal(sealed)
	if err == nil {
		*n++
	}
	return out, err
}
