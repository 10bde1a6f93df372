package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// HostSettings are a host's choices for what happens after the import: safe
// auto-recovery and parking are opt-in, and the low-balance threshold raises balance_low.
type HostSettings struct {
	bun.BaseModel `bun:"table:host_settings"`

	HostID string `bun:"host_id,pk" json:"host_id"`
	// AutoRecover: re-enable an account the host shows errored or unschedulable once the
	// product's own upstream check is green, then prove it through the gateway.
	AutoRecover bool `bun:"auto_recover" json:"auto_recover"`
	// ParkFailing: set an account unschedulable when its key fails with invalid_key,
	// key_banned or no_quota.
	ParkFailing bool `bun:"park_failing" json:"park_failing"`
	// LowBalance is the threshold (in the balance's currency) under which balance_low is
	// raised; 0 = only when the provider refuses paid calls.
	LowBalance float64   `bun:"low_balance" json:"low_balance"`
	UpdatedAt  time.Time `bun:"updated_at" json:"updated_at"`
}

// GetHostSettings returns a host's settings (the defaults, all off, when none were saved).
func (s *Store) GetHostSettings(ctx context.Context, hostID string) (*HostSettings, error) {
	hs := &HostSettings{HostID: hostID}
	err := s.DB.NewSelect().Model(hs).WherePK().Scan(ctx)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("settings of host %s: %w", hostID, err)
	}
	return hs, nil
}

// PutHostSettings saves a host's settings.
func (s *Store) PutHostSettings(ctx context.Context, hs *HostSettings) error {
	hs.UpdatedAt = s.now()
	if _, err := s.DB.NewInsert().Model(hs).On("CONFLICT (host_id) DO UPDATE").
		Set("auto_recover = EXCLUDED.auto_recover, park_failing = EXCLUDED.park_failing").
		Set("low_balance = EXCLUDED.low_balance, updated_at = EXCLUDED.updated_at").Exec(ctx); err != nil {
		return fmt.Errorf("save settings of host %s: %w", hs.HostID, err)
	}
	return nil
}

// Webhook is one notification target of a host. Its URL (which carries the platform's
// token) and signing secret are sealed; only URLShown (scheme://host) is ever shown.
type Webhook struct {
	bun.BaseModel `bun:"table:webhooks"`

	ID        string `bun:"id,pk" json:"id"`
	HostID    string `bun:"host_id" json:"host_id"`
	Name      string `bun:"name" json:"name,omitempty"`
	Format    string `bun:"format" json:"format"`
	URLEnc    string `bun:"url_enc" json:"-"`
	URLShown  string `bun:"url_shown" json:"url"`
	SecretEnc string `bun:"secret_enc" json:"-"`
	Lang      string `bun:"lang" json:"lang"`
	// Events are the event types delivered; empty = every type.
	Events    []string  `bun:"events,type:text" json:"events"`
	CreatedAt time.Time `bun:"created_at" json:"created_at"`
	UpdatedAt time.Time `bun:"updated_at" json:"updated_at"`
}

// Signed reports whether the webhook has a signing secret.
func (w *Webhook) Signed() bool { return w.SecretEnc != "" }

// MarshalJSON adds "signed" to the webhook's JSON; the sealed values stay out.
func (w Webhook) MarshalJSON() ([]byte, error) {
	type plain Webhook
	return json.Marshal(struct {
		plain
		Signed bool `json:"signed"`
	}{plain(w), w.Signed()})
}

// Wants reports whether the webhook takes events of type t.
func (w *Webhook) Wants(t string) bool {
	if len(w.Events) == 0 {
		return true
	}
	for _, e := range w.Events {
		if e == t {
			return true
		}
	}
	return false
}

// CreateWebhook stores a webhook (URL and secret already sealed by the caller).
func (s *Store) CreateWebhook(ctx context.Context, w *Webhook) error {
	now := s.now()
	if w.ID == "" {
		w.ID = NewID()
	}
	w.CreatedAt, w.UpdatedAt = now, now
	if w.Events == nil {
		w.Events = []string{}
	}
	if _, err := s.DB.NewInsert().Model(w).Exec(ctx); err != nil {
		return writeError("insert webhook", err)
	}
	return nil
}

// GetWebhook loads one webhook.
func (s *Store) GetWebhook(ctx context.Context, id string) (*Webhook, error) {
	w := new(Webhook)
	if err := s.DB.NewSelect().Model(w).Where("id = ?", id).Scan(ctx); err != nil {
		return nil, notFound(err, "webhook "+id)
	}
	return w, nil
}

// ListWebhooks returns a host's webhooks, oldest first.
func (s *Store) ListWebhooks(ctx context.Context, hostID string) ([]Webhook, error) {
	out := []Webhook{}
	if err := s.DB.NewSelect().Model(&out).Where("host_id = ?", hostID).Order("created_at ASC", "id ASC").Scan(ctx); err != nil {
		return nil, fmt.Errorf("webhooks of host %s: %w", hostID, err)
	}
	return out, nil
}

// DeleteWebhook removes a webhook; deliveries still pending for it are dropped (marked
// failed) in the same transaction.
func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	return s.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewDelete().Model((*Webhook)(nil)).Where("id = ?", id).Exec(ctx)
		if err != nil {
			return fmt.Errorf("delete webhook %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("webhook %s: %w", id, ErrNotFound)
		}
		_, err = tx.NewUpdate().Model((*OutboxRow)(nil)).Set("state = ?", OutboxFailed).Set("last_error = ?", "the webhook was deleted").
			Set("updated_at = ?", s.now()).Where("webhook_id = ?", id).Where("state = ?", OutboxPending).Exec(ctx)
		return err
	})
}

// rotateWebhooks re-encrypts the sealed webhook URLs and secrets (RotateSecrets).
func rotateWebhooks(ctx context.Context, tx bun.Tx, r Resealer, n *int) error {
	var hooks []Webhook
	if err := tx.NewSelect().Model(&hooks).Column("id", "url_enc", "secret_enc").Scan(ctx); err != nil {
		return err
	}
	for i := range hooks {
		w := &hooks[i]
		var err error
		if w.URLEnc, err = reseal(r, w.URLEnc, n); err != nil {
			return fmt.Errorf("webhook %s URL: %w", w.ID, err)
		}
		if w.SecretEnc, err = reseal(r, w.SecretEnc, n); err != nil {
			return fmt.Errorf("webhook %s secret: %w", w.ID, err)
		}
		if _, err := tx.NewUpdate().Model(w).Column("url_enc", "secret_enc").WherePK().Exec(ctx); err != nil {
			return err
		}
	}
	return nil
}
