package pipeline

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/hostsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// seedImported puts on the host, directly, what importing n self_service items leaves
// (a group, an account and a key per item, one managed user) and writes the matching
// ledger rows of one finished batch: 3n+1 ledger objects in a fraction of the time a real
// import takes.
func seedImported(tb testing.TB, h *harness, n int) *store.Batch {
	tb.Helper()
	ctx := context.Background()
	b := &store.Batch{HostID: h.host.ID, Mode: ModeSelfService}
	items := make([]*store.Item, n)
	for i := range items {
		items[i] = &store.Item{Name: fmt.Sprintf("seed-%d", i), BaseURL: "http://127.0.0.1:9", APIKeyEnc: "v1:x", KeyMasked: "sk-...",
			KeyFingerprint: fmt.Sprintf("fp-%d", i), Status: store.ItemReady}
	}
	if err := h.store.CreateBatch(ctx, b, items); err != nil {
		tb.Fatal(err)
	}
	specs := make([]hostsim.SeedItem, n)
	for i, it := range items {
		specs[i] = hostsim.SeedItem{Group: objectName("g", it), Account: objectName("a", it), Key: objectName("k", it),
			KeyValue: fmt.Sprintf("sk-crm-seeded-%012d", i)}
	}
	email := h.eng.Settings.ManagedUserEmail
	seeded := h.hs.Seed(email, "seeded-password-0", specs)
	now := time.Now().UTC()
	row := func(it *store.Item, typ, name string, id int64, parent int64) store.Resource {
		hid := idString(id)
		r := store.Resource{ID: store.NewID(), HostID: h.host.ID, BatchID: b.ID, Type: typ, Name: name, HostResourceID: &hid,
			State: store.ResourceCreated, Details: map[string]any{}, CreatedAt: now, UpdatedAt: now}
		if it != nil {
			r.ItemID = it.ID
		}
		if parent != 0 {
			r.ParentID = idString(parent)
		}
		return r
	}
	rows := []store.Resource{row(items[0], store.TypeUser, email, seeded.UserID, 0)}
	for i, it := range items {
		rows = append(rows, row(it, store.TypeGroup, specs[i].Group, seeded.Groups[i], 0),
			row(it, store.TypeAccount, specs[i].Account, seeded.Accounts[i], seeded.Groups[i]),
			row(it, store.TypeKey, specs[i].Key, seeded.Keys[i], seeded.Groups[i]))
	}
	for i := 0; i < len(rows); i += 500 {
		part := rows[i:min(i+500, len(rows))]
		if _, err := h.store.DB.NewInsert().Model(&part).Exec(ctx); err != nil {
			tb.Fatal(err)
		}
	}
	return b
}

// reconcileAt runs one host-wide reconcile with the given host latency and returns how
// long it took and how many requests the host received.
func reconcileAt(tb testing.TB, h *harness, latency time.Duration) (*store.ReconcileRun, time.Duration, int64) {
	tb.Helper()
	h.hs.SetLatency(latency)
	defer h.hs.SetLatency(0)
	h.hs.ResetRequests()
	run := &store.ReconcileRun{HostID: h.host.ID}
	start := time.Now()
	if err := h.eng.Reconcile(context.Background(), run); err != nil {
		tb.Fatal(err)
	}
	took := time.Since(start)
	all, _ := h.hs.Requests()
	return run, took, all
}

// The targets: a reconcile of 10 000 ledger objects against a host answering in
// 40 ms takes at most 30 s and 100 host calls, and one of 601 objects (200 items) at most
// 10 s and 60 calls. Listing in pages of 1000 needs about a dozen calls either way.
func TestReconcileScalesByListing(t *testing.T) {
	for _, tc := range []struct {
		items    int
		maxTime  time.Duration
		maxCalls int64
	}{{200, 10 * time.Second, 60}, {3333, 30 * time.Second, 100}} {
		t.Run(fmt.Sprintf("objects=%d", 3*tc.items+1), func(t *testing.T) {
			h := newHarness(t, harnessOpts{})
			seedImported(t, h, tc.items)
			run, took, calls := reconcileAt(t, h, 40*time.Millisecond)
			t.Logf("%d objects: %s, %d host calls: %s", run.ObjectsTotal, took.Round(time.Millisecond), calls, run.Summary)
			if len(run.Findings) != 0 || run.ObjectsChecked != 3*tc.items+1 || run.ObjectsTotal != run.ObjectsChecked {
				t.Fatalf("run: %d of %d checked, findings %+v", run.ObjectsChecked, run.ObjectsTotal, run.Findings)
			}
			if took > tc.maxTime || calls > tc.maxCalls {
				t.Errorf("%s and %d host calls, want at most %s and %d", took, calls, tc.maxTime, tc.maxCalls)
			}
		})
	}
}

// BenchmarkReconcile measures a host-wide reconcile at 40 ms host latency (docs/perf.md):
// items=200 is a real import of 200 self_service items (601 ledger objects), objects=10000
// a seeded host and ledger of the same shape.
func BenchmarkReconcile(b *testing.B) {
	b.Run("items=200", func(b *testing.B) {
		h := newHarness(b, harnessOpts{})
		_, items := h.submit(ModeSelfService, specs("bench", 200)...)
		h.driveAll(items, 8)
		benchReconcile(b, h)
	})
	b.Run("objects=10000", func(b *testing.B) {
		h := newHarness(b, harnessOpts{})
		seedImported(b, h, 3333)
		benchReconcile(b, h)
	})
}

func benchReconcile(b *testing.B, h *harness) {
	var calls int64
	var total time.Duration
	var run *store.ReconcileRun
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, took, n := reconcileAt(b, h, 40*time.Millisecond)
		run, calls, total = r, calls+n, total+took
	}
	b.StopTimer()
	if len(run.Findings) != 0 {
		b.Fatalf("findings on a quiet host: %+v", run.Findings[0])
	}
	b.ReportMetric(float64(calls)/float64(b.N), "host-calls/op")
	b.ReportMetric(float64(run.ObjectsTotal), "objects")
	b.ReportMetric(total.Seconds()/float64(b.N), "s/op")
}
