package app

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/config"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/hostsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/upstreamsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/step"
	"github.com/cn-relay-manager/cn-relay-manager/jobs"

	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// A step that finds its concurrency cap full gives its worker slot back instead of
// waiting in it (issue 17): with an upstream cap of 1 and 4 worker slots, the imports of
// one provider run one at a time, and the other slots are free for other work, not
// occupied by imports blocked on the cap. Every item still finishes (the release of the
// slot wakes the next waiter), the cap is never exceeded, and no waiter is left behind.
func TestStepsWaitingForACapHoldNoWorkerSlot(t *testing.T) {
	const n = 6
	upSim := upstreamsim.New(upstreamsim.Options{})
	up := newInflight(upSim)                      // counts our own (direct) calls only: the cap is ours
	up.delay.Store(int64(100 * time.Millisecond)) // a probe (6 calls) holds the cap ~0.6 s
	upSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Test-From-Host") != "" {
			upSim.ServeHTTP(w, r) // the host's account test, not capped by us
			return
		}
		up.ServeHTTP(w, r)
	}))
	defer upSrv.Close()
	adminKey := "admin-" + secret.RandomToken(32)
	hs := hostsim.New(hostsim.Options{AdminAPIKey: adminKey, UpstreamClient: &http.Client{Transport: markHost{}}})
	hostSrv := httptest.NewServer(hs)
	defer hostSrv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := newTestApp(ctx, t, func(cfg *config.Config) {
		cfg.WorkerConcurrency = 4
		cfg.UpstreamConcurrency = 1
		cfg.WindowSchedule = []time.Duration{time.Second}
		cfg.SweepInterval = time.Hour // a lost wake-up must not be hidden by the sweep
	})
	h := registerSimHost(ctx, t, a, "caps", hostSrv.URL, adminKey)
	base := upSrv.URL + upSim.BaseURL("deepseek")
	b := queueKeys(ctx, t, a, h.ID, upSim, base, "caps", n)
	done := make(chan error, 1)
	go func() { done <- a.RunWorker(ctx) }()

	samples, crowded, parked := 0, 0, 0
	awaitBatch(ctx, t, a, b.ID, 2*time.Minute, 15*time.Millisecond, func() {
		// A step waiting for the cap is parked in asynq's retry set with the cap's
		// message: its task ID stays held (the recovery sweep leaves it alone) and an
		// operator sees it in asynqmon.
		if retry, err := a.Inspector.ListRetryTasks(jobs.QueueName); err == nil {
			n := 0
			for _, task := range retry {
				if task.Type == step.Import && strings.Contains(task.LastErr, "concurrency cap upstream:") && task.Retried == 0 {
					n++
				}
			}
			parked = max(parked, n)
		}
		if up.inFlight("deepseek") == 0 {
			return
		}
		// A probe holds the cap: who else occupies a worker slot?
		active, err := a.Inspector.ListActiveTasks(jobs.QueueName)
		if err != nil {
			return
		}
		imports := 0
		for _, task := range active {
			if task.Type == step.Import {
				imports++
			}
		}
		samples++
		if imports > 1 {
			crowded++
		}
	}, func() string { return "(a waiter was never woken?)" })
	cancel()
	<-done
	if p := up.peakOf("deepseek"); p != 1 {
		t.Fatalf("%d upstream calls at once with a cap of 1", p)
	}
	if parked == 0 {
		t.Fatal("no waiting import was seen parked in the retry set with the cap's message")
	}
	if samples < 10 {
		t.Fatalf("only %d samples while a probe ran", samples)
	}
	// A task that meets the full cap is active for a moment (dequeued, refused, ended);
	// one that waits in its slot is active for the whole probe ahead of it.
	if float64(crowded) > 0.25*float64(samples) {
		t.Fatalf("in %d of %d samples taken while one probe held the cap, more than one import occupied a worker slot: steps wait for the cap in their slots", crowded, samples)
	}
	t.Logf("%d of %d samples saw a second import in a slot (momentarily, on its way out); up to %d imports parked at once", crowded, samples, parked)
	if c := hs.Counts(); c.Accounts != n {
		t.Fatalf("host accounts %d, want %d", c.Accounts, n)
	}
	if m := a.Redis; m != nil {
		t.Log("shared Redis: wait lists not inspected")
	} else if keys, _ := a.limitRedis.Keys(context.Background(), "crm:limit:wait:*").Result(); len(keys) != 0 {
		t.Fatalf("wait lists left behind: %v", keys)
	}
}

// markHost marks the simulated host's own calls to the upstream.
type markHost struct{}

func (markHost) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Test-From-Host", "1")
	return http.DefaultTransport.RoundTrip(r)
}

// An item's later steps do not queue behind the rest of its batch's imports: the worker
// serves jobs.FinishQueue first, so items become ready while imports are still waiting
// (with one queue, none was ready before every import had run: at 10 000 items, six
// minutes in which an operator saw nothing finish).
func TestItemsFinishWhileImportsAreQueued(t *testing.T) {
	const n = 40
	up, err := upstreamsim.Start(upstreamsim.Options{Latency: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	adminKey := "admin-" + secret.RandomToken(32)
	hs := hostsim.New(hostsim.Options{AdminAPIKey: adminKey})
	hostSrv := httptest.NewServer(hs)
	defer hostSrv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := newTestApp(ctx, t, func(cfg *config.Config) {
		cfg.WorkerConcurrency = 2
		cfg.WindowSchedule = []time.Duration{time.Second}
	})
	h := registerSimHost(ctx, t, a, "finish", hostSrv.URL, adminKey)
	b := queueKeys(ctx, t, a, h.ID, up, up.BaseURL("deepseek"), "finish", n)
	done := make(chan error, 1)
	go func() { done <- a.RunWorker(ctx) }()
	importsLeft := -1 // items not imported yet when the first item was ready
	awaitBatch(ctx, t, a, b.ID, 2*time.Minute, 10*time.Millisecond, func() {
		if importsLeft >= 0 {
			return
		}
		counts, err := a.Store.StatusCounts(ctx, b.ID)
		if err != nil || counts[store.ItemReady] == 0 {
			return
		}
		importsLeft = counts[store.ItemSubmitted]
	}, nil)
	cancel()
	<-done
	t.Logf("the first item was ready with %d of %d items not imported yet", importsLeft, n)
	if importsLeft < n/4 {
		t.Fatalf("the first item was ready only when %d of %d items were left to import: later steps queue behind imports", importsLeft, n)
	}
}

// queueKeys stores a batch (mode none) of n deepseek keys named after tag, known to the
// simulated provider at base, and queues their imports as the API would.
func queueKeys(ctx context.Context, t *testing.T, a *App, hostID string, up interface {
	AddKey(string, upstreamsim.KeyMode)
}, base, tag string, n int) *store.Batch {
	t.Helper()
	b := &store.Batch{HostID: hostID, Mode: "none"}
	var items []*store.Item
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("sk-%s-%06d-abcdef", tag, i)
		up.AddKey(key, upstreamsim.ModeOK)
		sealed, _ := a.Box.Seal(key)
		items = append(items, &store.Item{Name: key, BaseURL: base, ProviderHint: "deepseek", APIKeyEnc: sealed,
			KeyMasked: secret.Mask(key), KeyFingerprint: a.Box.Fingerprint(key), RequestedModels: []string{"deepseek-flash"}, Step: step.Import})
	}
	if err := a.Store.CreateBatch(ctx, b, items); err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if err := a.Queue.EnqueueStep(ctx, it.Step, it.ID, it.Seq, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return b
}
