package hostreg

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cn-relay-manager/cn-relay-manager/internal/batch/request"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// fakeProber accepts one admin key and one password, as a host would; a URL with "down"
// does not answer.
type fakeProber struct {
	box    *secret.Box
	probes int
}

func (p *fakeProber) ProbeHost(_ context.Context, h *store.Host) error {
	p.probes++
	if strings.Contains(h.AdminURL, "down") {
		return errors.New("dial tcp: connection refused")
	}
	key, _ := p.box.Open(h.AdminKeyEnc)
	pw, _ := p.box.Open(h.AdminPasswordEnc)
	h.Version, h.Profile = "0.1.179", "0.1.179"
	if key == "good-admin-key-0123456789" || pw == "good-password" {
		h.Status, h.StatusMessage = "ok", ""
	} else {
		h.Status, h.StatusMessage = "auth_failed", "the host refused the admin credentials (UNAUTHORIZED)"
	}
	return nil
}

func newService(t *testing.T) (*Service, *fakeProber) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "h.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	box, _ := secret.NewBox("hostreg-test-master-key")
	p := &fakeProber{box: box}
	return &Service{Store: st, Box: box, Prober: p}, p
}

func wantField(t *testing.T, err error, field string) {
	t.Helper()
	var fe *request.FieldError
	if !errors.As(err, &fe) || fe.Field != field {
		t.Errorf("err %v, want a refusal of field %q", err, field)
	}
}

func wantCode(t *testing.T, err error, code string, kind Kind) {
	t.Helper()
	var he *Error
	if !errors.As(err, &he) || he.Code != code || he.Kind != kind {
		t.Errorf("err %v, want %s", err, code)
	}
}

func TestRegisterAndUpdate(t *testing.T) {
	s, p := newService(t)
	ctx := context.Background()
	good := Settings{Name: " prod ", AdminURL: "https://admin.example/", AdminAPIKey: "good-admin-key-0123456789"}

	_, err := s.Register(ctx, Settings{Name: "x", AdminURL: "https://a"})
	wantField(t, err, "admin_api_key")
	_, err = s.Register(ctx, Settings{Name: "x", AdminURL: "mailto:a"})
	wantField(t, err, "admin_url")
	_, err = s.Register(ctx, Settings{Name: "x", AdminURL: "https://a", AdminAPIKey: "k", AdminEmail: "a@b"})
	wantField(t, err, "admin_api_key")
	_, err = s.Register(ctx, Settings{Name: "x", AdminURL: "https://a", AdminEmail: "a@b"})
	wantField(t, err, "admin_password")
	_, err = s.Register(ctx, Settings{Name: "x", AdminURL: "https://a", AdminAPIKey: "wrong-key"})
	wantCode(t, err, "host_auth_failed", HostRefused)
	_, err = s.Register(ctx, Settings{Name: "x", AdminURL: "https://down.example", AdminAPIKey: "good-admin-key-0123456789"})
	wantCode(t, err, "host_unreachable", HostRefused)
	if hs, _ := s.Store.ListHosts(ctx); len(hs) != 0 {
		t.Fatalf("refused registrations stored %d hosts", len(hs))
	}

	h, err := s.Register(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	if h.Name != "prod" || h.AdminURL != "https://admin.example" || h.PublicURL != h.AdminURL || h.Status != "ok" || h.AdminKeyMasked != "good-a...6789" {
		t.Errorf("registered %+v", h)
	}
	_, err = s.Register(ctx, good)
	wantCode(t, err, "host_exists", Conflict)

	// A rename or a new public URL needs no probe.
	before := p.probes
	u, err := s.Update(ctx, h.ID, Settings{Name: "prod-cn", PublicURL: "https://relay.example"})
	if err != nil || u.Name != "prod-cn" || u.PublicURL != "https://relay.example" || p.probes != before {
		t.Fatalf("rename: %+v %v (probes %d → %d)", u, err, before, p.probes)
	}
	// Key rotation: a refused key changes nothing; an accepted one is sealed and masked.
	_, err = s.Update(ctx, h.ID, Settings{AdminAPIKey: "revoked-admin-key-0123"})
	wantCode(t, err, "host_auth_failed", HostRefused)
	if g, _ := s.Store.GetHost(ctx, h.ID); g.AdminKeyEnc != h.AdminKeyEnc {
		t.Error("a refused admin key was saved")
	}
	_, err = s.Update(ctx, h.ID, Settings{AdminPassword: "good-password"})
	wantField(t, err, "admin_password")
	u, err = s.Update(ctx, h.ID, Settings{AdminEmail: "ops@example.com", AdminPassword: "good-password"})
	if err != nil || u.AuthKind != AuthPassword || u.AdminKeyEnc != "" || u.AdminKeyMasked != "" {
		t.Fatalf("switch to a password: %+v %v", u, err)
	}
	_, err = s.Update(ctx, h.ID, Settings{AdminPassword: "old-password"})
	wantCode(t, err, "host_auth_failed", HostRefused)
	_, err = s.Update(ctx, h.ID, Settings{AdminURL: "https://down.example"})
	wantCode(t, err, "host_unreachable", HostRefused)
	_, err = s.Update(ctx, h.ID, Settings{})
	wantField(t, err, "")
	if _, err := s.Update(ctx, "nope", Settings{Name: "x"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing host: %v", err)
	}
	u, err = s.Update(ctx, h.ID, Settings{AdminAPIKey: "good-admin-key-0123456789"})
	if err != nil || u.AuthKind != AuthAPIKey || u.AdminEmail != "" || u.AdminPasswordEnc != "" {
		t.Fatalf("back to a key: %+v %v", u, err)
	}
	if k, err := s.Box.Open(u.AdminKeyEnc); err != nil || k != "good-admin-key-0123456789" {
		t.Errorf("stored key %q %v", k, err)
	}

	// Test saves nothing, whatever it tests.
	r, err := s.Test(ctx, h.ID, Settings{AdminAPIKey: "wrong-one"})
	if err != nil || r.OK || r.Status != "auth_failed" || r.Settings != "given" {
		t.Errorf("test of a wrong key: %+v %v", r, err)
	}
	r, err = s.Test(ctx, h.ID, Settings{})
	if err != nil || !r.OK || r.Settings != "stored" || r.Version != "0.1.179" {
		t.Errorf("test of the stored settings: %+v %v", r, err)
	}
	if g, _ := s.Store.GetHost(ctx, h.ID); g.AdminKeyEnc != u.AdminKeyEnc {
		t.Error("Test saved the key it tested")
	}
}

func TestDeleteSaysWhatItForgets(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	h, err := s.Register(ctx, Settings{Name: "prod", AdminURL: "https://a", AdminAPIKey: "good-admin-key-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	b := &store.Batch{HostID: h.ID, Mode: "none"}
	items := []*store.Item{{Name: "a", BaseURL: "https://x", KeyMasked: "k", KeyFingerprint: "f"}}
	if err := s.Store.CreateBatch(ctx, b, items); err != nil {
		t.Fatal(err)
	}
	_, _, err = s.Delete(ctx, h.ID, false)
	wantCode(t, err, "host_busy", Conflict)
	if _, err := s.Store.CancelBatch(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{store.TypeGroup, store.TypeAccount, store.TypeAccount} {
		if _, err := s.Store.EnsureIntent(ctx, &store.Resource{HostID: h.ID, BatchID: b.ID, ItemID: items[0].ID, Type: typ,
			Name: "crm-" + typ + "-" + secret.RandomToken(4)}); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err = s.Delete(ctx, h.ID, false)
	wantCode(t, err, "host_in_use", Conflict)
	if err == nil || !strings.Contains(err.Error(), "3 objects (1 group, 2 accounts)") {
		t.Errorf("refusal %v does not count the ledger", err)
	}
	gone, usage, err := s.Delete(ctx, h.ID, true)
	if err != nil || gone.Name != "prod" || usage.LedgerTotal != 3 || usage.Batches != 1 {
		t.Fatalf("forgetting delete: %+v %+v %v", gone, usage, err)
	}
}
