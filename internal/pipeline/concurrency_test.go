package pipeline

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/host"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/upstreamsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// specs returns n distinct deepseek items.
func specs(prefix string, n int) []itemSpec {
	out := make([]itemSpec, n)
	for i := range out {
		out[i] = itemSpec{provider: "deepseek", key: fmt.Sprintf("sk-%s-%012d", prefix, i), mode: upstreamsim.ModeOK, models: []string{"deepseek-flash"}}
	}
	return out
}

// driveAll runs every item to its end, a few at a time, like concurrent workers; errors
// are reported on t (safe from the goroutines: no Fatal).
func (h *harness) driveAll(items []*store.Item, workers int) {
	h.t.Helper()
	ctx := context.Background()
	next := make(chan string)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range next {
				it, err := h.store.GetItem(ctx, id)
				if err != nil {
					h.t.Errorf("get item: %v", err)
					continue
				}
				step, seq := it.Step, it.Seq
				for i := 0; i < 500 && step != ""; i++ {
					dec, err := h.eng.Run(ctx, step, id, seq)
					if err != nil {
						h.t.Errorf("run %s for %s: %v", step, id, err)
						break
					}
					h.clock.Advance(dec.Delay)
					step, seq = dec.Next, dec.Seq
				}
			}
		}()
	}
	for _, it := range items {
		next <- it.ID
	}
	close(next)
	wg.Wait()
}

// waitFor polls cond until it holds or the bound passes.
func waitFor(t *testing.T, what string, bound time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", bound, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func ledgerStates(t testing.TB, h *harness, f store.ResourceFilter) map[string]int {
	t.Helper()
	f.Limit = 100000
	rows, _, err := h.store.ListResources(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range rows {
		out[r.State]++
	}
	return out
}

// A rollback and a reconcile of the same batch run at the same time against a host with
// latency: the reconcile must not report the objects the rollback deletes as missing, and
// every ledger row must end in the state the rollback wrote (deleted).
func TestRollbackConcurrentWithReconcile(t *testing.T) {
	h := newHarness(t, harnessOpts{latency: 10 * time.Millisecond})
	ctx := context.Background()
	const n = 16
	b, items := h.submit(ModeSelfService, specs("rbrc", n)...)
	h.driveAll(items, 8)
	for _, it := range items {
		if got, _ := h.store.GetItem(ctx, it.ID); got.Status != store.ItemReady {
			t.Fatalf("item %s: %s %s", got.ID, got.Status, got.FailureMessage)
		}
	}
	before := ledgerStates(t, h, store.ResourceFilter{BatchID: b.ID})
	objects := before[store.ResourceCreated] + before[store.ResourceAdopted]

	var act store.Action
	var rbErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		act, rbErr = h.eng.Rollback(ctx, b.ID)
	}()
	// Start the reconcile once the rollback is deleting on the host.
	waitFor(t, "the rollback's first delete", 30*time.Second, func() bool { return h.hs.Counts().Keys < n })
	run := &store.ReconcileRun{HostID: h.host.ID, BatchID: b.ID}
	if err := h.eng.Reconcile(ctx, run); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	<-done
	t.Logf("reconcile during the rollback: %s", run.Summary)
	if rbErr != nil || act.Status != "completed" {
		t.Fatalf("rollback: %v %+v", rbErr, act)
	}
	if len(run.Findings) != 0 {
		t.Errorf("reconcile reported %d finding(s) for objects the rollback deleted, e.g. %+v", len(run.Findings), run.Findings[0])
	}
	after := ledgerStates(t, h, store.ResourceFilter{BatchID: b.ID})
	if after[store.ResourceDeleted] != objects || len(after) != 1 {
		t.Errorf("ledger after the rollback: %v, want all %d rows deleted", after, objects)
	}
	if c := h.hs.Counts(); c.Groups+c.Accounts+c.Keys+c.Users != 0 {
		t.Errorf("host objects left: %+v", c)
	}
}

// A periodic (host-wide) reconcile runs while a second batch is being imported: objects the
// import creates after the reconcile started are neither orphaned nor missing, and every
// ledger row ends in the state the import wrote.
func TestCronReconcileConcurrentWithImport(t *testing.T) {
	h := newHarness(t, harnessOpts{latency: 10 * time.Millisecond})
	ctx := context.Background()
	_, first := h.submit(ModeSelfService, specs("cron-a", 12)...)
	h.driveAll(first, 8)
	b2, second := h.submit(ModeSelfService, specs("cron-b", 12)...)
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.driveAll(second, 4)
	}()
	waitFor(t, "the import's first ledger row", 30*time.Second, func() bool {
		_, total, err := h.store.ListResources(ctx, store.ResourceFilter{BatchID: b2.ID, Limit: 1})
		return err == nil && total > 0
	})
	run := &store.ReconcileRun{HostID: h.host.ID, Slot: "202611271200"}
	if err := h.eng.Reconcile(ctx, run); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	<-done
	t.Logf("reconcile during the import: %s", run.Summary)
	if len(run.Findings) != 0 {
		t.Errorf("reconcile reported %d finding(s) during an import, e.g. %+v", len(run.Findings), run.Findings[0])
	}
	for _, it := range append(first, second...) {
		if got, _ := h.store.GetItem(ctx, it.ID); got.Status != store.ItemReady {
			t.Fatalf("item %s: %s %s", got.ID, got.Status, got.FailureMessage)
		}
	}
	states := ledgerStates(t, h, store.ResourceFilter{HostID: h.host.ID})
	if states[store.ResourceCreated] == 0 || states[store.ResourceCreated]+states[store.ResourceAdopted] != 12*3+12*3+1 {
		t.Errorf("ledger after the import: %v, want every one of the %d rows created (or adopted)", states, 12*3+12*3+1)
	}
	// And the next run, with nothing in flight, is in sync.
	again := &store.ReconcileRun{HostID: h.host.ID}
	if err := h.eng.Reconcile(ctx, again); err != nil || len(again.Findings) != 0 {
		t.Fatalf("quiet reconcile: %v %+v", err, again.Findings)
	}
}

// hookClient runs a hook before chosen host calls (to interleave another writer).
type hookClient struct {
	HostClient
	onGetGroup  func(id int64)
	onDeleteKey func()
}

func (c hookClient) GetGroup(ctx context.Context, id int64) (*host.Group, error) {
	if c.onGetGroup != nil {
		c.onGetGroup(id)
	}
	return c.HostClient.GetGroup(ctx, id)
}

func (c hookClient) DeleteKey(ctx context.Context, token string, id int64) error {
	if c.onDeleteKey != nil {
		c.onDeleteKey()
	}
	return c.HostClient.DeleteKey(ctx, token, id)
}

// rowOf returns the ledger row of an item's object of type typ.
func rowOf(t *testing.T, h *harness, it *store.Item, typ string) *store.Resource {
	t.Helper()
	rows, err := h.store.AllResources(context.Background(), store.ResourceFilter{ItemID: it.ID, Type: typ})
	if err != nil || len(rows) != 1 {
		t.Fatalf("ledger rows %s of item %s: %d %v", typ, it.ID, len(rows), err)
	}
	return &rows[0]
}

// setWrap wraps the host client from now on (the engine caches clients per host).
func (h *harness) setWrap(wrap func(HostClient) HostClient) {
	h.wrap = wrap
	h.eng.mu.Lock()
	h.eng.clients = nil
	h.eng.mu.Unlock()
}

// Writers that change a row while a reconcile compares it win: a group the host lost is
// claimed by a rollback while the reconcile confirms the loss (the reconcile's
// compare-and-set to missing loses; no finding), and an account drifting on the host is
// deleted by a rollback before the run is stored (the finding is dropped). A drift no one
// touches is still reported.
func TestReconcileYieldsToConcurrentWriters(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	ctx := context.Background()
	b, items := h.submit(ModeNone, specs("yield", 3)...)
	h.driveAll(items, 3)
	gone := rowOf(t, h, items[0], store.TypeGroup)      // deleted out of band, claimed by a rollback meanwhile
	unbound := rowOf(t, h, items[0], store.TypeAccount) // lost its group binding with it, claimed too
	drift := rowOf(t, h, items[1], store.TypeAccount)   // unschedulable, then claimed by a rollback
	real := rowOf(t, h, items[2], store.TypeAccount)    // unschedulable, nobody touches it
	gid, _ := hostID(gone)
	cfg, _ := HostConfig(h.box, h.host)
	admin := host.New(cfg)
	if err := admin.DeleteGroup(ctx, gid); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*store.Resource{drift, real} {
		id, _ := hostID(r)
		if _, err := admin.SetSchedulable(ctx, id, false); err != nil {
			t.Fatal(err)
		}
	}
	claim := func(r *store.Resource) {
		cur, err := h.store.GetResource(ctx, r.ID)
		if err != nil {
			t.Error(err)
			return
		}
		if won, err := h.store.TransitionResource(ctx, cur, cur.State, store.ResourceDeleting); err != nil || !won {
			t.Errorf("claim %s: %v %v", r.Name, won, err)
		}
	}
	h.setWrap(func(c HostClient) HostClient {
		return hookClient{HostClient: c, onGetGroup: func(id int64) {
			if id == gid {
				claim(gone)
				claim(unbound)
				claim(drift)
			}
		}}
	})
	run := &store.ReconcileRun{HostID: h.host.ID, BatchID: b.ID}
	if err := h.eng.Reconcile(ctx, run); err != nil {
		t.Fatal(err)
	}
	if len(run.Findings) != 1 || run.Findings[0].Name != real.Name || run.Findings[0].Code != CodeAccountUnschedulable {
		t.Fatalf("findings: %+v", run.Findings)
	}
	for _, r := range []*store.Resource{gone, unbound, drift} {
		if got, _ := h.store.GetResource(ctx, r.ID); got.State != store.ResourceDeleting {
			t.Errorf("%s: the reconcile overwrote the rollback's state: %s", r.Name, got.State)
		}
	}
}

// A reconcile marks a row missing between the rollback's read of the ledger and its claim
// of that row: the rollback loses its compare-and-set, reads the row again and still
// deletes the object; the row ends deleted.
func TestRollbackDecidesAgainAfterLosingARace(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	ctx := context.Background()
	b, items := h.submit(ModeSelfService, specs("again", 2)...)
	h.driveAll(items, 2)
	acc := rowOf(t, h, items[0], store.TypeAccount)
	raced := false
	var once sync.Once
	h.setWrap(func(c HostClient) HostClient {
		return hookClient{HostClient: c, onDeleteKey: func() {
			once.Do(func() {
				cur, _ := h.store.GetResource(ctx, acc.ID)
				cur.Details = map[string]any{missingFrom: cur.State}
				if won, err := h.store.TransitionResource(ctx, cur, cur.State, store.ResourceMissing, "details"); err != nil || !won {
					t.Errorf("reconcile write: %v %v", won, err)
				}
				raced = true
			})
		}}
	})
	act, err := h.eng.Rollback(ctx, b.ID)
	if err != nil || act.Status != "completed" || !raced {
		t.Fatalf("rollback: %v %+v (raced: %v)", err, act, raced)
	}
	if got, _ := h.store.GetResource(ctx, acc.ID); got.State != store.ResourceDeleted || got.Details[detailDeletingFrom] != nil {
		t.Fatalf("account row: %s %v", got.State, got.Details)
	}
	if c := h.hs.Counts(); c.Accounts != 0 || c.Groups != 0 {
		t.Fatalf("host after rollback: %+v", c)
	}
	if states := ledgerStates(t, h, store.ResourceFilter{BatchID: b.ID}); len(states) != 1 || states[store.ResourceDeleted] == 0 {
		t.Fatalf("ledger: %v", states)
	}
}
