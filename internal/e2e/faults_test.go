package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/hostsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// TestHostFaults runs a batch against a simulated host that answers 20% of its admin
// requests with a 500, leaves 5% unanswered until it closes the connection (a timeout)
// and drops 5% of the connections without an answer. Timeouts and drops strike after the
// host acted (LoseAnswers): a create took effect although its answer never came, the hard
// case for idempotency. Every good item still ends ready, nothing is duplicated, and the
// retries are visible in the attempts and bounded.
//
// The product has no setting for the host client's timeout (internal/host DefaultTimeout,
// 30 s, not reachable through CRM_*), so a request that hangs until the client gives up
// would hold a worker slot for 30 s per timeout. The simulated timeout therefore hangs
// CRM_FAULT_HANG (default 3s) and then closes the connection without an answer; set
// CRM_FAULT_HANG=0 to hang until the client's own 30 s timeout.
func TestHostFaults(t *testing.T) {
	t.Parallel()
	n := crashItems(t)
	hang := envDuration(t, "CRM_FAULT_HANG", 3*time.Second)
	cl := newCluster(t, clusterOpts{host: hostsim.Options{FaultRate: 0.2, TimeoutRate: 0.05, TimeoutHang: hang, DropRate: 0.05, LoseAnswers: true}})
	items, good := genItems(cl.up, n, "hf")
	begin := time.Now()
	id := cl.submit("host-faults", items)
	got := cl.waitTerminal(id, envDuration(t, "CRM_CRASH_TIMEOUT", 8*time.Minute))
	wall := time.Since(begin)
	res := cl.checkConsistency(map[string][]store.Item{id: got}, good)
	if res.Stats.FailedExchange == 0 {
		t.Errorf("no failed host exchange recorded in the attempts' evidence: the faults are not visible")
	}
	for _, ex := range cl.retryExamples(id, got, 5) {
		t.Logf("retry attempt: %s", ex)
	}
	cl.report("host_faults", wall, "db=%s fault=0.20 timeout=0.05(hang %s) drop=0.05 lose_answers=true %s", cl.db, hang, res)
}

// TestHostDown takes the simulated host down (every connection dropped) for
// CRM_HOST_DOWN (default 10s; full size 30s) in the middle of a batch, then brings it
// back: the batch completes with every good item ready.
func TestHostDown(t *testing.T) {
	t.Parallel()
	n := crashItems(t)
	down := envDuration(t, "CRM_HOST_DOWN", 10*time.Second)
	cl := newCluster(t, clusterOpts{host: hostsim.Options{Latency: 10 * time.Millisecond}})
	items, good := genItems(cl.up, n, "hd")
	begin := time.Now()
	id := cl.submit("host-down", items)
	// The host goes down mid-batch by construction: it first holds its requests (steps
	// in flight), then goes down, then lets the held requests meet the dead host.
	waitFor(2*time.Minute, func() bool { return cl.progress(id) >= n/4 })
	release := cl.hs.Hold()
	if !waitFor(time.Minute, func() bool { return len(cl.hs.Held()) > 0 }) {
		release()
		t.Fatalf("no step called the host within a minute of the hold\n%s", cl.logs())
	}
	atDown := cl.progress(id)
	cl.hs.SetDown(true)
	release()
	downAt := time.Now()
	time.Sleep(down)
	duringDown := cl.progress(id) - atDown
	cl.hs.SetDown(false)
	upAt := time.Now()
	t.Logf("host down at %.1fs for %s with %d/%d items terminal; %d items became terminal meanwhile (invalid keys fail without the host)",
		downAt.Sub(begin).Seconds(), down, atDown, n, duringDown)

	got := cl.waitTerminal(id, envDuration(t, "CRM_CRASH_TIMEOUT", 5*time.Minute))
	wall := time.Since(begin)
	res := cl.checkConsistency(map[string][]store.Item{id: got}, good)
	if res.Stats.FailedExchange == 0 && res.Stats.Retries == 0 {
		t.Errorf("no retry and no failed host exchange recorded although the host was down for %s", down)
	}
	for _, ex := range cl.retryExamples(id, got, 5) {
		t.Logf("retry attempt: %s", ex)
	}
	cl.report("host_down", wall, "db=%s down=%s at_terminal=%d finished_after_up_s=%.1f %s", cl.db, down, atDown, time.Since(upAt).Seconds(), res)
}

// TestHostFaultsInjection checks the simulator's timeout and drop faults themselves.
func TestHostFaultsInjection(t *testing.T) {
	t.Parallel()
	const key = "admin-0000000000000000000000000000000000000000000000000000000000000000"
	get := func(hs *hostsim.Server, timeout time.Duration) (time.Duration, error) {
		req, _ := http.NewRequest("GET", hs.URL()+"/api/v1/admin/groups", nil)
		req.Header.Set("x-api-key", key)
		start := time.Now()
		resp, err := (&http.Client{Timeout: timeout}).Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return time.Since(start), err
	}
	createGroup := func(hs *hostsim.Server, name string) error {
		req, _ := http.NewRequest("POST", hs.URL()+"/api/v1/admin/groups", strings.NewReader(`{"name":"`+name+`","platform":"openai","rate_multiplier":1}`))
		req.Header.Set("x-api-key", key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	start := func(o hostsim.Options) *hostsim.Server {
		hs, err := hostsim.Start(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(hs.Close)
		return hs
	}

	// A timeout hangs TimeoutHang, then closes the connection without an answer.
	hs := start(hostsim.Options{TimeoutRate: 1, TimeoutHang: 300 * time.Millisecond})
	if d, err := get(hs, 5*time.Second); err == nil || d < 250*time.Millisecond {
		t.Errorf("TimeoutRate 1: got err=%v after %s, want no answer after ~300ms", err, d)
	}
	// Without TimeoutHang it hangs until the client gives up.
	hs = start(hostsim.Options{TimeoutRate: 1})
	if d, err := get(hs, 400*time.Millisecond); err == nil || d < 350*time.Millisecond {
		t.Errorf("TimeoutRate 1, no hang bound: got err=%v after %s, want the client's timeout", err, d)
	}
	// A drop closes the connection at once, before the host acts.
	hs = start(hostsim.Options{DropRate: 1})
	if d, err := get(hs, 5*time.Second); err == nil || d > 2*time.Second {
		t.Errorf("DropRate 1: got err=%v after %s, want a dropped connection", err, d)
	}
	if err := createGroup(hs, "g-before"); err == nil {
		t.Errorf("DropRate 1: create answered")
	}
	if c := hs.Counts(); c.Groups != 0 {
		t.Errorf("DropRate 1 without LoseAnswers: the host acted (%+v)", c)
	}
	// With LoseAnswers the host acts, then the answer is lost.
	hs = start(hostsim.Options{DropRate: 1, LoseAnswers: true})
	if err := createGroup(hs, "g-after"); err == nil {
		t.Errorf("DropRate 1 + LoseAnswers: create answered")
	}
	if c := hs.Counts(); c.Groups != 1 {
		t.Errorf("DropRate 1 + LoseAnswers: host holds %+v, want the group created", c)
	}
	// Rates are exclusive and add up: 0.5 + 0.5 faults every request.
	hs = start(hostsim.Options{FaultRate: 0.5, DropRate: 0.5})
	for i := 0; i < 20; i++ {
		req, _ := http.NewRequest("GET", hs.URL()+"/api/v1/admin/groups", nil)
		req.Header.Set("x-api-key", key)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 500 {
				t.Fatalf("FaultRate 0.5 + DropRate 0.5: request %d answered %d", i, resp.StatusCode)
			}
		}
	}
}
