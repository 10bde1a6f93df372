package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/testpg"
)

// dialects maps each supported database to a function returning the URL of a fresh,
// private, empty database of that kind.
var dialects = []struct {
	name string
	url  func(t *testing.T) string
}{
	{DialectSQLite, func(t *testing.T) string { return filepath.Join(t.TempDir(), "t.db") }},
	{DialectPostgres, func(t *testing.T) string { return testpg.Start(t) }},
}

// forEachDialect runs fn as subtests "sqlite" and "postgres", each on its own freshly
// migrated database.
func forEachDialect(t *testing.T, fn func(t *testing.T, s *Store)) {
	t.Helper()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			s := openURL(t, d.url(t))
			if got := s.Dialect(); got != d.name {
				t.Fatalf("Dialect() = %q, want %q", got, d.name)
			}
			fn(t, s)
		})
	}
}

// openURL opens and migrates the database at url, closing it at cleanup.
func openURL(t *testing.T, url string) *Store {
	t.Helper()
	s, err := Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// openTest opens a migrated SQLite store (for tests that need only one dialect).
func openTest(t *testing.T) *Store {
	t.Helper()
	return openURL(t, dialects[0].url(t))
}

func seedBatch(t *testing.T, s *Store, n int) (*Host, *Batch, []*Item) {
	t.Helper()
	ctx := context.Background()
	h := &Host{Name: "h-" + NewID(), AdminURL: "http://x", PublicURL: "http://x", AuthKind: "api_key"}
	if err := s.CreateHost(ctx, h); err != nil {
		t.Fatal(err)
	}
	b := &Batch{HostID: h.ID, Mode: "self_service"}
	var items []*Item
	for i := 0; i < n; i++ {
		items = append(items, &Item{Name: fmt.Sprintf("i%d", i), BaseURL: "http://u", APIKeyEnc: "v1:x", KeyMasked: "sk-...", KeyFingerprint: "fp", RequestedModels: []string{"m"}})
	}
	if err := s.CreateBatch(ctx, b, items); err != nil {
		t.Fatal(err)
	}
	return h, b, items
}

func TestMigrateUpDownUp(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if err := s.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ListHosts(ctx); err == nil {
			t.Fatal("hosts table still exists after rollback")
		}
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ListHosts(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestBatchRoundTripAndStatus(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		_, b, items := seedBatch(t, s, 3)
		got, err := s.GetBatch(ctx, b.ID)
		if err != nil || got.ItemCount != 3 || got.Status != BatchQueued {
			t.Fatalf("batch: %+v %v", got, err)
		}
		list, total, err := s.ListItems(ctx, b.ID, 0, 0)
		if err != nil || total != 3 || list[2].Idx != 2 || list[0].RequestedModels[0] != "m" {
			t.Fatalf("items: %+v %d %v", list, total, err)
		}
		// Complete all three with different outcomes.
		for i, st := range []string{ItemReady, ItemFailed, ItemReady} {
			it, _ := s.GetItem(ctx, items[i].ID)
			it.Status = st
			it.Seq++
			if err := s.CompleteStep(ctx, it, it.Seq-1, &Attempt{Step: "import", Seq: it.Seq - 1, Number: 1, Outcome: OutcomeOK, StartedAt: time.Now(), FinishedAt: time.Now()}); err != nil {
				t.Fatal(err)
			}
		}
		got, _ = s.GetBatch(ctx, b.ID)
		if got.Status != BatchPartiallySucceeded || got.FinishedAt == nil {
			t.Fatalf("batch status %s finished %v", got.Status, got.FinishedAt)
		}
		atts, _ := s.ListAttempts(ctx, items[0].ID)
		if len(atts) != 1 {
			t.Fatalf("attempts: %d", len(atts))
		}
	})
}

func TestCompleteStepRejectsStale(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		_, _, items := seedBatch(t, s, 1)
		it, _ := s.GetItem(ctx, items[0].ID)
		it.Seq = 1
		if err := s.CompleteStep(ctx, it, 0, &Attempt{Step: "import", Seq: 0, Number: 1, Outcome: OutcomeOK, StartedAt: time.Now(), FinishedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		dup, _ := s.GetItem(ctx, items[0].ID)
		dup.Seq = 1
		err := s.CompleteStep(ctx, dup, 0, &Attempt{Step: "import", Seq: 0, Number: 1, Outcome: OutcomeOK, StartedAt: time.Now(), FinishedAt: time.Now()})
		if !errors.Is(err, ErrStale) {
			t.Fatalf("second completion at the same seq: %v", err)
		}
		atts, _ := s.ListAttempts(ctx, it.ID)
		if len(atts) != 1 {
			t.Fatalf("stale completion wrote an attempt: %d", len(atts))
		}
	})
}

func TestDeriveBatchStatus(t *testing.T) {
	cases := []struct {
		c    map[string]int
		want string
	}{
		{map[string]int{ItemSubmitted: 2}, BatchQueued},
		{map[string]int{ItemSubmitted: 1, ItemReady: 1}, BatchRunning},
		{map[string]int{ItemReady: 2, ItemReadyWithWarnings: 1}, BatchSucceeded},
		{map[string]int{ItemReady: 1, ItemFailed: 1}, BatchPartiallySucceeded},
		{map[string]int{ItemFailed: 2}, BatchFailed},
		{map[string]int{ItemRolledBack: 2}, BatchRolledBack},
		{map[string]int{ItemCancelled: 2}, BatchCancelled},
		{map[string]int{ItemSkipped: 2}, BatchSucceeded},
	}
	for _, c := range cases {
		if got := DeriveBatchStatus(c.c); got != c.want {
			t.Errorf("%v: got %s want %s", c.c, got, c.want)
		}
	}
}

func TestLedgerIntentIsWriteAhead(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		h, b, items := seedBatch(t, s, 1)
		r1, err := s.EnsureIntent(ctx, &Resource{HostID: h.ID, BatchID: b.ID, ItemID: items[0].ID, Type: TypeGroup, Name: "crm-g1", IdempotencyKey: "k"})
		if err != nil || r1.State != ResourceIntent || r1.HostResourceID != nil {
			t.Fatalf("intent: %+v %v", r1, err)
		}
		if err := s.MarkCreated(ctx, r1, "42", ResourceCreated); err != nil {
			t.Fatal(err)
		}
		r2, err := s.EnsureIntent(ctx, &Resource{HostID: h.ID, BatchID: b.ID, Type: TypeGroup, Name: "crm-g1"})
		if err != nil || r2.ID != r1.ID || r2.HostResourceID == nil || *r2.HostResourceID != "42" {
			t.Fatalf("second intent must return the recorded row: %+v %v", r2, err)
		}
		rows, total, err := s.ListResources(ctx, ResourceFilter{BatchID: b.ID, Type: TypeGroup})
		if err != nil || total != 1 || rows[0].State != ResourceCreated {
			t.Fatalf("list: %+v %d %v", rows, total, err)
		}
	})
}

// Concurrent transactional writers must never fail: no SQLITE_BUSY on SQLite, no
// serialization or deadlock errors on PostgreSQL.
func TestConcurrentWritersNoBusy(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		_, _, items := seedBatch(t, s, 40)
		var wg sync.WaitGroup
		errs := make(chan error, len(items))
		for _, it := range items {
			wg.Add(1)
			go func(id string) {
				defer wg.Done()
				for seq := 0; seq < 5; seq++ {
					cur, err := s.GetItem(ctx, id)
					if err != nil {
						errs <- err
						return
					}
					cur.Seq = seq + 1
					cur.Status = ItemImporting
					if err := s.CompleteStep(ctx, cur, seq, &Attempt{Step: "import", Seq: seq, Number: seq + 1, Outcome: OutcomeRetry, StartedAt: time.Now(), FinishedAt: time.Now()}); err != nil {
						errs <- err
						return
					}
				}
			}(it.ID)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	})
}
