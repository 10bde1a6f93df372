package store

import (
	"context"
	"strings"
	"testing"

	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
)

func TestRotateSecrets(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	oldBox, _ := secret.NewBox("old-master-key-0000000")
	newBox, _ := secret.NewBox("new-master-key-1111111")
	adminEnc, _ := oldBox.Seal("admin-secret-value-123")
	h := &Host{Name: "h", AdminURL: "http://x", PublicURL: "http://x", AuthKind: "api_key", AdminKeyEnc: adminEnc}
	if err := s.CreateHost(ctx, h); err != nil {
		t.Fatal(err)
	}
	keyEnc, _ := oldBox.Seal("sk-upstream-key-0000001")
	b := &Batch{HostID: h.ID, Mode: "none"}
	it := &Item{Name: "i", BaseURL: "http://u", APIKeyEnc: keyEnc, KeyMasked: "m", KeyFingerprint: oldBox.Fingerprint("sk-upstream-key-0000001")}
	if err := s.CreateBatch(ctx, b, []*Item{it}); err != nil {
		t.Fatal(err)
	}
	pwEnc, _ := oldBox.Seal("user-password-0001")
	if _, err := s.EnsureIntent(ctx, &Resource{HostID: h.ID, BatchID: b.ID, Type: TypeUser, Name: "u@x", SecretEnc: pwEnc}); err != nil {
		t.Fatal(err)
	}
	n, err := s.RotateSecrets(ctx, secret.Rotation{Old: oldBox, New: newBox})
	if err != nil || n != 3 {
		t.Fatalf("rotated %d: %v", n, err)
	}
	gotH, _ := s.GetHost(ctx, h.ID)
	if v, err := newBox.Open(gotH.AdminKeyEnc); err != nil || v != "admin-secret-value-123" {
		t.Fatalf("admin key after rotation: %q %v", v, err)
	}
	if _, err := oldBox.Open(gotH.AdminKeyEnc); err == nil {
		t.Fatal("old key still opens the rotated value")
	}
	gotI, _ := s.GetItem(ctx, it.ID)
	if v, _ := newBox.Open(gotI.APIKeyEnc); v != "sk-upstream-key-0000001" || gotI.KeyFingerprint != newBox.Fingerprint(v) {
		t.Fatal("item key or fingerprint not rotated")
	}
	// A wrong old key changes nothing.
	wrong, _ := secret.NewBox("wrong-master-key-222222")
	if _, err := s.RotateSecrets(ctx, secret.Rotation{Old: wrong, New: oldBox}); err == nil || !strings.Contains(err.Error(), "rotate secrets") {
		t.Fatalf("rotation with a wrong key: %v", err)
	}
	gotH2, _ := s.GetHost(ctx, h.ID)
	if gotH2.AdminKeyEnc != gotH.AdminKeyEnc {
		t.Fatal("a failed rotation changed data")
	}
}

// Marking a shared object as adopted never relabels one this system created (the
// managed user, ensured concurrently by several items).
func TestAdoptedNeverDowngradesCreated(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	h := &Host{Name: "h", AdminURL: "http://x", PublicURL: "http://x", AuthKind: "api_key"}
	if err := s.CreateHost(ctx, h); err != nil {
		t.Fatal(err)
	}
	creator, _ := s.EnsureIntent(ctx, &Resource{HostID: h.ID, Type: TypeUser, Name: "u@x"})
	finder, _ := s.EnsureIntent(ctx, &Resource{HostID: h.ID, Type: TypeUser, Name: "u@x"})
	if err := s.MarkCreated(ctx, creator, "9", ResourceCreated); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkCreated(ctx, finder, "9", ResourceAdopted); err != nil {
		t.Fatal(err)
	}
	got, _ := s.EnsureIntent(ctx, &Resource{HostID: h.ID, Type: TypeUser, Name: "u@x"})
	if got.State != ResourceCreated {
		t.Fatalf("state %s after a late adopt, want created", got.State)
	}
}
