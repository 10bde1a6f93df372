package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
)

// An operator upgrades in place: the database the previous release wrote opens with the
// current code, the new migrations apply, and every host, batch, item, attempt, ledger row
// and reconcile run is still there, with the new columns filled in for the old rows.
func TestUpgradeFromPreviousRelease(t *testing.T) {
	ctx := context.Background()
	src := filepath.Join("testdata", "release-bb9291b")
	raw, err := os.ReadFile(filepath.Join(src, "demo.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "demo.db")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrate the previous release's database: %v", err)
	}

	hosts, err := s.ListHosts(ctx)
	if err != nil || len(hosts) != 1 {
		t.Fatalf("hosts %d %v", len(hosts), err)
	}
	key, _ := os.ReadFile(filepath.Join(src, "master.key"))
	box, err := secret.NewBox(strings.TrimSpace(string(key)))
	if err != nil {
		t.Fatal(err)
	}
	if admin, err := box.Open(hosts[0].AdminKeyEnc); err != nil || !strings.HasPrefix(admin, "admin-") {
		t.Fatalf("the host's sealed admin key does not open with the release's master key: %v", err)
	}

	batches, total, err := s.ListBatches(ctx, BatchFilter{Limit: 10})
	if err != nil || total != 1 {
		t.Fatalf("batches %d %v", total, err)
	}
	b := &batches[0]
	if b.Status != BatchPartiallySucceeded || b.ItemCount != 8 {
		t.Fatalf("batch %s with %d items", b.Status, b.ItemCount)
	}
	// Batches stored before target groups existed keep one group per item.
	if b.Options.GroupMode() != GroupPerItem {
		t.Fatalf("old batch target mode %q, want per_item", b.Options.GroupMode())
	}
	items, _, err := s.ListItems(ctx, b.ID, 100, 0)
	if err != nil || len(items) != 8 {
		t.Fatalf("items %d %v", len(items), err)
	}
	counts, _ := s.StatusCounts(ctx, b.ID)
	if counts[ItemReady] != 6 || counts[ItemFailed] != 2 {
		t.Fatalf("item states %v", counts)
	}
	attempts := 0
	for _, it := range items {
		atts, err := s.ListAttempts(ctx, it.ID)
		if err != nil {
			t.Fatal(err)
		}
		attempts += len(atts)
		if it.TargetGroup != "" || it.KeyProof != "" {
			t.Errorf("%s: new columns not empty on an old item: %q %q", it.Name, it.TargetGroup, it.KeyProof)
		}
		if it.Status == ItemReady && (it.SmokePreview == "" || len(it.Models) == 0) {
			t.Errorf("%s: ready item lost its proof or models", it.Name)
		}
	}
	if attempts != 24 {
		t.Fatalf("%d attempts, want 24", attempts)
	}

	rows, err := s.AllResources(ctx, ResourceFilter{HostID: hosts[0].ID})
	if err != nil || len(rows) != 19 {
		t.Fatalf("ledger rows %d %v", len(rows), err)
	}
	var user *Resource
	for i := range rows {
		r := &rows[i]
		if r.State != ResourceCreated || r.HostResourceID == nil {
			t.Errorf("ledger row %s %s: %s", r.Type, r.Name, r.State)
		}
		if r.Origin != OriginCreated {
			t.Errorf("ledger row %s %s: origin %q, want created (backfilled)", r.Type, r.Name, r.Origin)
		}
		if r.Type == TypeUser {
			user = r
		}
		if r.Type == TypeGroup || r.Type == TypeAccount || r.Type == TypeKey {
			// Each item's own objects are used by that item.
			uses, err := s.UsingBatches(ctx, r.ID, "")
			if err != nil || uses[r.BatchID] != 1 {
				t.Errorf("ledger row %s %s: uses %v %v, want one by its item", r.Type, r.Name, uses, err)
			}
		}
	}
	// The managed user is used by every item that got a key.
	if uses, err := s.UsingBatches(ctx, user.ID, ""); err != nil || uses[b.ID] != 6 {
		t.Fatalf("managed user uses %v %v, want the 6 items with keys", uses, err)
	}
	if used, err := s.UsedByBatch(ctx, b.ID); err != nil || len(used) != 0 {
		t.Fatalf("rows the batch uses without having created them: %d %v", len(used), err)
	}
	runs, err := s.ListReconcileRuns(ctx, hosts[0].ID, "", 10)
	if err != nil || len(runs) != 1 || runs[0].Status != "completed" {
		t.Fatalf("reconcile runs %+v %v", runs, err)
	}
}
