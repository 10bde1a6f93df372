package pipeline

import (
	"context"
	"strings"
	"testing"

	"github.com/cn-relay-manager/cn-relay-manager/internal/failure"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/upstreamsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// A process whose master key cannot open an item's stored secrets fails the item at once,
// with master_key_mismatch and an attempt naming CRM_MASTER_KEY, instead of returning an
// error that leaves the item submitted and its task retried forever.
func TestUnreadableSecretsFailAtOnce(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	other, _ := secret.NewBox("another-master-key-0123456789")
	ctx := context.Background()

	check := func(t *testing.T, id, what string) {
		t.Helper()
		it, err := h.store.GetItem(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := h.eng.Run(ctx, it.Step, id, it.Seq)
		if err != nil {
			t.Fatalf("run: %v (an error leaves the item to endless retries)", err)
		}
		if dec.Next != "" {
			t.Fatalf("decision %+v: the item must stop", dec)
		}
		it, _ = h.store.GetItem(ctx, id)
		if it.Status != store.ItemFailed || it.FailureClass != string(failure.MasterKeyMismatch) {
			t.Fatalf("item %s/%s, want failed/master_key_mismatch", it.Status, it.FailureClass)
		}
		atts := h.attempts(id)
		if len(atts) != 1 || atts[0].FailureClass != string(failure.MasterKeyMismatch) {
			t.Fatalf("attempts %+v", atts)
		}
		for _, want := range []string{"CRM_MASTER_KEY", what} {
			if !strings.Contains(it.FailureMessage, want) || !strings.Contains(atts[0].Message, want) {
				t.Errorf("failure message %q lacks %q", it.FailureMessage, want)
			}
		}
		if h.hs.Counts().Accounts != 0 {
			t.Error("the host was written to")
		}
	}

	t.Run("item key", func(t *testing.T) {
		_, items := h.submit(ModeSelfService, itemSpec{provider: "deepseek", key: "sk-unreadable-0001", mode: upstreamsim.ModeOK})
		h.eng.Box = other
		defer func() { h.eng.Box = h.box }()
		check(t, items[0].ID, "the API key of item 1")
	})
	t.Run("host admin key", func(t *testing.T) {
		_, items := h.submit(ModeSelfService, itemSpec{provider: "deepseek", key: "sk-unreadable-0002", mode: upstreamsim.ModeOK})
		// The item's key was sealed under the process's key, the host's admin key was not.
		sealed, _ := other.Seal("sk-unreadable-0002")
		it, _ := h.store.GetItem(ctx, items[0].ID)
		if _, err := h.store.DB.NewUpdate().Model(it).Set("api_key_enc = ?", sealed).WherePK().Exec(ctx); err != nil {
			t.Fatal(err)
		}
		h.eng.Box = other
		defer func() { h.eng.Box = h.box }()
		check(t, items[0].ID, "the admin key of host sim")

		// Probing the host says the same, as a status.
		ho, _ := h.store.GetHost(ctx, h.host.ID)
		if err := h.eng.ProbeHost(ctx, ho); err != nil || ho.Status != HostKeyMismatch || !strings.Contains(ho.StatusMessage, "CRM_MASTER_KEY") {
			t.Errorf("probe: %v %s %q", err, ho.Status, ho.StatusMessage)
		}
	})
}
