package app

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/config"
	"github.com/cn-relay-manager/cn-relay-manager/internal/limit"
	"github.com/cn-relay-manager/cn-relay-manager/internal/pipeline"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/hostsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/upstreamsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// inflight counts the requests a handler is serving at once, and their peak, by the
// first path segment (the simulated provider) or "host".
type inflight struct {
	h     http.Handler
	delay atomic.Int64 // added to every answer, in nanoseconds
	mu    sync.Mutex
	now   map[string]int
	peak  map[string]int
	total atomic.Int64
}

func newInflight(h http.Handler) *inflight {
	return &inflight{h: h, now: map[string]int{}, peak: map[string]int{}}
}

func (f *inflight) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2)[0]
	if strings.HasPrefix(r.URL.Path, "/api/v1/admin") {
		key = "host"
	}
	f.total.Add(1)
	f.mu.Lock()
	f.now[key]++
	if f.now[key] > f.peak[key] {
		f.peak[key] = f.now[key]
	}
	f.mu.Unlock()
	defer func() { f.mu.Lock(); f.now[key]--; f.mu.Unlock() }()
	if d := time.Duration(f.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	f.h.ServeHTTP(w, r)
}

func (f *inflight) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.peak = map[string]int{}
	f.total.Store(0)
}

func (f *inflight) inFlight(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now[key]
}

func (f *inflight) peakOf(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.peak[key]
}

// The scale target: a periodic re-verification of 2 000 accounts on the
// simulators completes within its period, its checks spread over the period (not all at
// once) and never more of them against one upstream, or against the host, than the caps
// allow (CRM_UPSTREAM_CONCURRENCY, CRM_HOST_CONCURRENCY, through the engine's Redis
// semaphore). Every 20th key has run out of money and the host parks it (a GET and a
// schedulable call each), so the host cap is exercised too. The figures are
// docs/perf.md's "Re-verification"; CRM_REVERIFY_ACCOUNTS and CRM_REVERIFY_PERIOD change
// the size and the period. Under the race detector, which slows every check about tenfold,
// 250 accounts are checked in the same period.
func TestReverify2000WithinPeriodAndCaps(t *testing.T) {
	n, period := 2000, 40*time.Second
	if raceEnabled {
		n = 250
	}
	if v, err := strconv.Atoi(os.Getenv("CRM_REVERIFY_ACCOUNTS")); err == nil && v > 0 {
		n = v
	}
	if v, err := time.ParseDuration(os.Getenv("CRM_REVERIFY_PERIOD")); err == nil && v >= 10*time.Second {
		period = v
	}
	const upstreamCap, hostCap = 3, 2
	upSim := upstreamsim.New(upstreamsim.Options{})
	up := newInflight(upSim)
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	adminKey := "admin-" + secret.RandomToken(32)
	hs := hostsim.New(hostsim.Options{AdminAPIKey: adminKey})
	host := newInflight(hs)
	hostSrv := httptest.NewServer(host)
	defer hostSrv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := newTestApp(ctx, t, func(cfg *config.Config) {
		cfg.WorkerConcurrency = 10
		cfg.HostConcurrency, cfg.UpstreamConcurrency = hostCap, upstreamCap
	})
	lim := &countingLimiter{Limiter: a.Engine.Limiter}
	a.Engine.Limiter = lim
	h := registerSimHost(ctx, t, a, "scale", hostSrv.URL, adminKey)
	if err := a.Store.PutHostSettings(ctx, &store.HostSettings{HostID: h.ID, ParkFailing: true}); err != nil {
		t.Fatal(err)
	}

	// What importing n deepseek keys leaves: ready items, one account each on the host, and
	// the ledger rows of the accounts.
	base := upSrv.URL + upSim.BaseURL("deepseek")
	b := &store.Batch{HostID: h.ID, Mode: "none"}
	items := make([]*store.Item, n)
	specs := make([]hostsim.SeedItem, n)
	broke := 0
	for i := range items {
		key := fmt.Sprintf("sk-scale-%06d-abcdef", i)
		mode := upstreamsim.ModeOK
		if i%20 == 7 {
			mode = upstreamsim.ModeNoQuota
			broke++
		}
		upSim.AddKey(key, mode)
		sealed, _ := a.Box.Seal(key)
		items[i] = &store.Item{Name: key, BaseURL: base, NormalizedURL: base, Provider: "deepseek", APIKeyEnc: sealed,
			KeyMasked: secret.Mask(key), KeyFingerprint: a.Box.Fingerprint(key), Models: []string{"deepseek-flash"},
			SmokeModel: "deepseek-flash", Status: store.ItemReady}
		specs[i] = hostsim.SeedItem{Group: fmt.Sprintf("crm-g-scale-%d", i), Account: fmt.Sprintf("crm-a-scale-%d", i)}
	}
	if err := a.Store.CreateBatch(ctx, b, items); err != nil {
		t.Fatal(err)
	}
	seeded := hs.Seed("", "", specs)
	now := time.Now().UTC()
	rows := make([]store.Resource, n)
	for i, it := range items {
		id := strconv.FormatInt(seeded.Accounts[i], 10)
		rows[i] = store.Resource{ID: store.NewID(), HostID: h.ID, BatchID: b.ID, ItemID: it.ID, Type: store.TypeAccount, Name: specs[i].Account,
			HostResourceID: &id, State: store.ResourceCreated, Origin: store.OriginCreated, Details: map[string]any{}, CreatedAt: now, UpdatedAt: now}
	}
	for i := 0; i < n; i += 500 {
		part := rows[i:min(i+500, n)]
		if _, err := a.Store.DB.NewInsert().Model(&part).Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}

	done := make(chan error, 1)
	go func() { done <- a.RunWorker(ctx) }()
	// The slot is the current UTC minute; its period is stretched by the seconds already
	// gone, so that the run has the whole period ahead of it as when the tick fires on time.
	start := time.Now()
	slotAt := start.UTC().Truncate(time.Minute)
	slotPeriod := start.Sub(slotAt).Truncate(time.Second) + time.Second + period
	host.total.Store(0)
	if err := a.Queue.EnqueueVerifySlot(ctx, h.ID, slotAt, slotPeriod); err != nil {
		t.Fatal(err)
	}
	var run *store.VerifyRun
	var progress []string
	for {
		runs, err := a.Store.ListVerifyRuns(ctx, h.ID, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) == 1 {
			run = &runs[0]
			if len(progress) == 0 || time.Since(start) > time.Duration(len(progress))*period/8 {
				progress = append(progress, fmt.Sprintf("%.0fs: %d/%d", time.Since(start).Seconds(), run.AccountsChecked, run.AccountsTotal))
			}
			if run.Status != store.VerifyRunning {
				break
			}
		}
		if time.Since(start) > 2*period+time.Minute { // a hang guard
			t.Fatalf("the run did not finish: %+v", run)
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(start)
	upPeak, hostPeak, upCalls, hostCalls := up.peakOf("deepseek"), host.peakOf("host"), up.total.Load(), host.total.Load()

	// The same accounts re-verified at once (a run asked for with no spread): every check
	// is due now and only the caps hold them back. The upstream answers in 3 ms here, so
	// that the checks contend for its slots rather than for the database.
	up.reset()
	host.reset()
	up.delay.Store(int64(3 * time.Millisecond))
	burstStart := time.Now()
	burst, err := a.Accounts().RunNow(ctx, h.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if burst, err = a.Store.GetVerifyRun(ctx, burst.ID); err != nil {
			t.Fatal(err)
		}
		if burst.Status != store.VerifyRunning || time.Since(burstStart) > 3*time.Minute {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A check that meets a full cap is parked, not kept waiting in its worker slot: the
	// checks take their caps with TryAcquire; only a run's listing of its host (one per
	// run) waits for a slot.
	tries, waits, parked := lim.tries.Load(), lim.waits.Load(), lim.parked.Load()
	t.Logf("caps: %d taken without waiting (%d found full and parked), %d waited for", tries, parked, waits)
	if tries < int64(2*n) || parked == 0 || waits > 4 {
		t.Errorf("caps: %d TryAcquire (%d parked), %d blocking Acquire: checks must not wait for a slot in their worker slot", tries, parked, waits)
	}
	burstTook := time.Since(burstStart)
	cancel()
	<-done
	t.Logf("burst (spread 0): %s in %s; peak in flight: upstream %d (cap %d), host %d (cap %d)", burst.Summary,
		burstTook.Round(100*time.Millisecond), up.peakOf("deepseek"), upstreamCap, host.peakOf("host"), hostCap)
	if burst.Status != store.VerifyCompleted || burst.AccountsChecked != n || burst.Failing != broke {
		t.Errorf("burst run %+v", burst)
	}
	if p := up.peakOf("deepseek"); p > upstreamCap {
		t.Errorf("burst: %d requests to the upstream at once, cap %d", p, upstreamCap)
	}
	if p := host.peakOf("host"); p > hostCap {
		t.Errorf("burst: %d requests to the host at once, cap %d", p, hostCap)
	}
	t.Logf("%d accounts (%d out of money), period %s, spread %ds: %s in %s (progress %s); peak in flight: upstream %d (cap %d), host %d (cap %d); %d upstream calls, %d host calls",
		n, broke, period, run.SpreadS, run.Summary, took.Round(100*time.Millisecond), strings.Join(progress, ", "),
		upPeak, upstreamCap, hostPeak, hostCap, upCalls, hostCalls)
	if run.Status != store.VerifyCompleted || run.AccountsChecked != n || run.Healthy != n-broke || run.Failing != broke || run.Actions != broke {
		t.Fatalf("run %+v", run)
	}
	if run.Deadline == nil || run.FinishedAt == nil || run.FinishedAt.After(*run.Deadline) {
		t.Fatalf("the run finished at %v, after its deadline %v", run.FinishedAt, run.Deadline)
	}
	if upPeak > upstreamCap {
		t.Errorf("%d requests to the upstream at once, cap %d", upPeak, upstreamCap)
	}
	if hostPeak > hostCap {
		t.Errorf("%d requests to the host at once, cap %d", hostPeak, hostCap)
	}
	// Spread, not all at once: the run took most of its spread.
	if min := time.Duration(run.SpreadS) * time.Second * 9 / 10; took < min {
		t.Errorf("the run took %s: its checks were not spread over %ds", took, run.SpreadS)
	}
}

// countingLimiter counts how the engine takes its caps.
type countingLimiter struct {
	pipeline.Limiter
	tries, waits, parked atomic.Int64
}

func (l *countingLimiter) Acquire(ctx context.Context, key string, n int) (func(), error) {
	l.waits.Add(1)
	return l.Limiter.Acquire(ctx, key, n)
}

func (l *countingLimiter) TryAcquire(ctx context.Context, key string, n int, waiter string) (func(), error) {
	l.tries.Add(1)
	release, err := l.Limiter.TryAcquire(ctx, key, n, waiter)
	if b, busy := limit.IsBusy(err); busy && b.Queued {
		l.parked.Add(1)
	}
	return release, err
}
