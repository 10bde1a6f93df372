package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// A state change names the state it expects: the first writer wins, a second one from the
// same old state loses and changes nothing, and the winner's extra columns are written.
func TestTransitionResourceCompareAndSet(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		h, b, _ := seedBatch(t, s, 1)
		row, err := s.EnsureIntent(ctx, &Resource{HostID: h.ID, BatchID: b.ID, Type: TypeGroup, Name: "crm-g-cas"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.MarkCreated(ctx, row, "41", ResourceCreated); err != nil {
			t.Fatal(err)
		}
		rollback, reconcile := *row, *row
		rollback.Details = map[string]any{"deleting_from": "created"}
		won, err := s.TransitionResource(ctx, &rollback, ResourceCreated, ResourceDeleting, "details")
		if err != nil || !won || rollback.State != ResourceDeleting {
			t.Fatalf("first writer: won=%v err=%v state=%s", won, err, rollback.State)
		}
		reconcile.Details = map[string]any{"missing_from": "created"}
		won, err = s.TransitionResource(ctx, &reconcile, ResourceCreated, ResourceMissing, "details")
		if err != nil || won || reconcile.State != ResourceCreated {
			t.Fatalf("a writer with a stale state must lose: won=%v err=%v state=%s", won, err, reconcile.State)
		}
		got, err := s.GetResource(ctx, row.ID)
		if err != nil || got.State != ResourceDeleting || got.Details["deleting_from"] != "created" || got.Details["missing_from"] != nil {
			t.Fatalf("row after the race: %+v %v", got, err)
		}
		// The loser re-reads and decides again from what it finds.
		won, err = s.TransitionResource(ctx, got, ResourceDeleting, ResourceDeleted)
		if err != nil || !won {
			t.Fatalf("deleting→deleted: %v %v", won, err)
		}
		if _, err := s.GetResource(ctx, "nope"); err == nil {
			t.Fatal("unknown row found")
		}
	})
}

// Many writers race the same compare-and-set: exactly one wins.
func TestTransitionResourceOneWinner(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		h, b, _ := seedBatch(t, s, 1)
		row, _ := s.EnsureIntent(ctx, &Resource{HostID: h.ID, BatchID: b.ID, Type: TypeAccount, Name: "crm-a-race"})
		if err := s.MarkCreated(ctx, row, "7", ResourceCreated); err != nil {
			t.Fatal(err)
		}
		const n = 12
		var wins sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for i := 0; i < n; i++ {
			wins.Add(1)
			go func(i int) {
				defer wins.Done()
				r := *row
				to := ResourceMissing
				if i%2 == 0 {
					to = ResourceDeleting
				}
				ok, err := s.TransitionResource(ctx, &r, ResourceCreated, to)
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					won++
					mu.Unlock()
				}
			}(i)
		}
		wins.Wait()
		if won != 1 {
			t.Fatalf("%d writers won the same compare-and-set", won)
		}
	})
}

// MarkCreated after another writer changed the row decides again: a row a rollback marked
// deleted while an import re-created its object records the new object; finding an object
// never relabels a row marked created.
func TestMarkCreatedDecidesAgain(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		h, b, _ := seedBatch(t, s, 1)
		importer, _ := s.EnsureIntent(ctx, &Resource{HostID: h.ID, BatchID: b.ID, Type: TypeUser, Name: "u@x"})
		other := *importer
		if won, err := s.TransitionResource(ctx, &other, ResourceIntent, ResourceDeleted); err != nil || !won {
			t.Fatalf("rollback of the intent: %v %v", won, err)
		}
		// The importer still holds the intent it read; the host created the object.
		if err := s.MarkCreated(ctx, importer, "12", ResourceCreated); err != nil {
			t.Fatal(err)
		}
		got, _ := s.GetResource(ctx, importer.ID)
		if got.State != ResourceCreated || got.HostResourceID == nil || *got.HostResourceID != "12" {
			t.Fatalf("row after a lost race: %+v", got)
		}
		// A rollback claims the object an import then tries to record: the row stays the
		// rollback's; a different object under the name afterwards is recorded.
		stale := *got
		claim := *got
		if won, err := s.TransitionResource(ctx, &claim, ResourceCreated, ResourceDeleting); err != nil || !won {
			t.Fatalf("claim: %v %v", won, err)
		}
		if err := s.MarkCreated(ctx, &stale, "12", ResourceCreated); !errors.Is(err, ErrRolledBack) {
			t.Fatalf("recording an object a rollback is deleting: %v", err)
		}
		if won, err := s.TransitionResource(ctx, &claim, ResourceDeleting, ResourceDeleted); err != nil || !won {
			t.Fatalf("finish: %v %v", won, err)
		}
		if err := s.MarkCreated(ctx, &stale, "12", ResourceCreated); !errors.Is(err, ErrRolledBack) {
			t.Fatalf("recording an object a rollback deleted: %v", err)
		}
		if err := s.MarkCreated(ctx, &stale, "13", ResourceCreated); err != nil {
			t.Fatalf("recording the re-created object: %v", err)
		}
		if got, _ := s.GetResource(ctx, importer.ID); got.State != ResourceCreated || *got.HostResourceID != "13" {
			t.Fatalf("row after re-creation: %+v", got)
		}
		finder := *importer
		finder.State = ResourceIntent // what a slower item read before the create
		if err := s.MarkCreated(ctx, &finder, "13", ResourceAdopted); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetResource(ctx, importer.ID); got.State != ResourceCreated || finder.State != ResourceCreated {
			t.Fatalf("adopt relabelled a created row: db %s, caller %s", got.State, finder.State)
		}
	})
}

// EachResource streams every row in pages, past any fixed limit, in id order.
func TestEachResourceStreamsEveryRow(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		h, b, _ := seedBatch(t, s, 1)
		const n = 2345
		rows := make([]Resource, n)
		now := time.Now().UTC()
		for i := range rows {
			rows[i] = Resource{ID: NewID(), HostID: h.ID, BatchID: b.ID, Type: TypeKey, Name: fmt.Sprintf("crm-k-%05d", i),
				State: ResourceCreated, Details: map[string]any{}, CreatedAt: now, UpdatedAt: now}
		}
		for i := 0; i < n; i += 500 {
			part := rows[i:min(i+500, n)]
			if _, err := s.DB.NewInsert().Model(&part).Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
		seen, pages := map[string]bool{}, 0
		last := ""
		err := s.EachResource(ctx, ResourceFilter{HostID: h.ID, Limit: 1000}, func(page []Resource) error {
			pages++
			for _, r := range page {
				if r.ID <= last || seen[r.ID] {
					return fmt.Errorf("row %s out of order or twice", r.ID)
				}
				last, seen[r.ID] = r.ID, true
			}
			return nil
		})
		if err != nil || len(seen) != n || pages != 3 {
			t.Fatalf("streamed %d rows in %d pages: %v", len(seen), pages, err)
		}
		if c, err := s.CountResources(ctx, ResourceFilter{BatchID: b.ID}); err != nil || c != n {
			t.Fatalf("count %d %v", c, err)
		}
		if m, err := s.ResourceTypeCounts(ctx, ResourceFilter{HostID: h.ID}); err != nil || m[TypeKey] != n || len(m) != 1 {
			t.Fatalf("type counts %v %v", m, err)
		}
		byID, err := s.ResourcesByID(ctx, []string{rows[0].ID, rows[n-1].ID, "nope"})
		if err != nil || len(byID) != 2 {
			t.Fatalf("by id: %d %v", len(byID), err)
		}
	})
}

// At most one periodic run per host runs at a time; asked-for runs are not limited; a
// running run without a heartbeat for too long is marked failed as abandoned.
func TestRunningReconcileRuns(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		h, _, _ := seedBatch(t, s, 1)
		first := &ReconcileRun{HostID: h.ID, Slot: "202612062200"}
		if err := s.CreateReconcileRun(ctx, first); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateReconcileRun(ctx, &ReconcileRun{HostID: h.ID, Slot: "202612062205"}); err == nil {
			t.Fatal("a second periodic run of the host started while the first runs")
		}
		manual := &ReconcileRun{HostID: h.ID}
		if err := s.CreateReconcileRun(ctx, manual); err != nil {
			t.Fatalf("an asked-for run beside a periodic one: %v", err)
		}
		skipped := &ReconcileRun{HostID: h.ID, Slot: "202612062205", Status: RunSkipped}
		if err := s.CreateReconcileRun(ctx, skipped); err != nil {
			t.Fatalf("a skipped slot: %v", err)
		}
		first.ObjectsChecked, first.ObjectsTotal = 40, 100
		if err := s.ReconcileProgress(ctx, first); err != nil {
			t.Fatal(err)
		}
		alive, err := s.RunningReconcile(ctx, h.ID, time.Minute)
		if err != nil || alive == nil {
			t.Fatalf("running: %+v %v", alive, err)
		}
		old := time.Now().UTC().Add(-time.Hour)
		if _, err := s.DB.NewUpdate().Model((*ReconcileRun)(nil)).Set("heartbeat_at = ?", old).Where("host_id = ?", h.ID).
			Where("status = ?", RunRunning).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		if alive, err := s.RunningReconcile(ctx, h.ID, time.Minute); err != nil || alive != nil {
			t.Fatalf("stale runs still alive: %+v %v", alive, err)
		}
		got, _ := s.GetReconcileRun(ctx, first.ID)
		if got.Status != RunFailed || got.ObjectsChecked != 40 || !strings.Contains(got.Summary, "40 of 100") {
			t.Fatalf("abandoned run: %+v", got)
		}
		if err := s.CreateReconcileRun(ctx, &ReconcileRun{HostID: h.ID, Slot: "202612062210"}); err != nil {
			t.Fatalf("the next periodic run after an abandoned one: %v", err)
		}
		if taken, err := s.ReconcileSlotTaken(ctx, h.ID, "202612062205"); err != nil || !taken {
			t.Fatalf("slot taken: %v %v", taken, err)
		}
	})
}
