package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/hostsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// TestCrashRecovery kills and wipes parts of a split deployment (built api and worker
// binaries, private redis-server) in the middle of a batch and checks afterwards that
// every item is terminal with its expected outcome, that the simulated host holds no
// duplicate object and that the ledger lists exactly the host's objects.
//
// Size: CRM_CRASH_ITEMS (default 40; full size 300). The subtests run in parallel.
func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	binaries(t) // build once before the subtests start their clocks
	t.Run("kill_worker", func(t *testing.T) { t.Parallel(); testKillWorker(t) })
	t.Run("wipe_redis", func(t *testing.T) { t.Parallel(); testWipeRedis(t) })
	t.Run("kill_api_during_submission", func(t *testing.T) { t.Parallel(); testKillAPIDuringSubmission(t) })
}

// orphanWatch polls asynq's active list and remembers, per task ID, when it was first
// and last seen active, to measure how long orphaned active tasks (their worker was
// killed) stay active before asynq's recoverer hands them back.
type orphanWatch struct {
	mu        sync.Mutex
	first     map[string]time.Time
	last      map[string]time.Time
	atKill    map[string]time.Time // task ID → time of the kill it was active at
	stop      chan struct{}
	stoppedWG sync.WaitGroup
}

func watchActive(cl *cluster) *orphanWatch {
	w := &orphanWatch{first: map[string]time.Time{}, last: map[string]time.Time{}, atKill: map[string]time.Time{}, stop: make(chan struct{})}
	w.stoppedWG.Add(1)
	go func() {
		defer w.stoppedWG.Done()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			now := time.Now()
			ids := cl.activeTasks()
			w.mu.Lock()
			for _, id := range ids {
				if _, ok := w.first[id]; !ok {
					w.first[id] = now
				}
				w.last[id] = now
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *orphanWatch) markKill(ids []string, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range ids {
		if _, ok := w.atKill[id]; !ok {
			w.atKill[id] = at
		}
	}
}

func (w *orphanWatch) close() {
	close(w.stop)
	w.stoppedWG.Wait()
}

// testKillWorker: two worker processes share a PostgreSQL database (the multi-node store);
// five times one of them is killed with SIGKILL and started again. Each kill lands while
// the victim is in the middle of a step by construction: at a random point of the batch
// the simulated host starts holding every request it receives; each round waits until a
// worker's own request is among the held ones, kills that worker and starts it again.
// Nothing finishes while the host holds, so the work the restarted worker needs is
// always there. The host lets everything go after the fifth kill.
func testKillWorker(t *testing.T) {
	n := crashItems(t)
	rng := testRand(t)
	// Four slots per worker: a kill orphans at most four steps (they wait for asynq's
	// recoverer), far fewer than the items still to do.
	cl := newCluster(t, clusterOpts{postgres: true, workers: 2, host: hostsim.Options{Latency: 5 * time.Millisecond},
		extraEnv: []string{"CRM_WORKER_CONCURRENCY=4"}})
	items, good := genItems(cl.up, n, "kw")
	watch := watchActive(cl)
	begin := time.Now()
	id := cl.submit("kill-worker", items)

	type kill struct {
		at       time.Duration
		slot     int
		inFlight int // requests of the victim held by the host at the kill
		orphaned []string
	}
	// Start holding somewhere in the first third of the batch (bounded: a slow machine
	// just holds earlier).
	at := n/8 + rng.IntN(n/4)
	waitFor(time.Minute, func() bool { return cl.progress(id) >= at })
	release := cl.hs.Hold()
	defer release()
	doneAtHold := cl.progress(id)
	var kills []kill
	for k := 0; k < 5; k++ {
		var candidates []int
		inFlight := map[int]int{}
		if !waitFor(time.Minute, func() bool {
			held := cl.hs.Held()
			candidates = candidates[:0]
			cl.mu.Lock()
			for slot, w := range cl.workers {
				if c := heldFrom(held, w.cmd.Process.Pid); c > 0 {
					inFlight[slot] = c
					candidates = append(candidates, slot)
				}
			}
			cl.mu.Unlock()
			return len(candidates) > 0
		}) {
			t.Fatalf("kill %d: no worker called the host within a minute (held: %v, %d/%d items terminal)\n%s",
				k+1, cl.hs.Held(), cl.progress(id), n, cl.logs())
		}
		slot := candidates[rng.IntN(len(candidates))]
		cl.mu.Lock()
		victim := cl.workers[slot]
		cl.mu.Unlock()
		killedAt := time.Now()
		cl.kill(victim)
		orphaned := cl.activeTasks() // still active: held by the killed worker (or the other one)
		watch.markKill(orphaned, killedAt)
		kills = append(kills, kill{at: killedAt.Sub(begin), slot: slot, inFlight: inFlight[slot], orphaned: orphaned})
		cl.startWorker(slot)
	}
	release()
	for i, k := range kills {
		t.Logf("kill %d: worker slot %d at %.1fs with %d of its host requests in flight, %d tasks active",
			i+1, k.slot, k.at.Seconds(), k.inFlight, len(k.orphaned))
	}
	t.Logf("the host held its requests from %d/%d items terminal until after the fifth kill", doneAtHold, n)

	// Orphaned active tasks wait for asynq's recoverer: their lease (30 s) must have
	// expired, and the recoverer runs every minute.
	got := cl.waitTerminal(id, envDuration(t, "CRM_CRASH_TIMEOUT", 5*time.Minute))
	wall := time.Since(begin)
	watch.close()
	if left := cl.activeTasks(); len(left) != 0 {
		t.Errorf("tasks still active after the batch: %v", left)
	}
	res := cl.checkConsistency(map[string][]store.Item{id: got}, good)

	// Orphans: tasks active at a kill that stayed active well past a normal step.
	watch.mu.Lock()
	orphans, recovered := 0, 0
	var longest time.Duration
	for tid, killedAt := range watch.atKill {
		stay := watch.last[tid].Sub(killedAt)
		if stay < 10*time.Second {
			continue // finished by the live worker (or just before the kill)
		}
		orphans++
		longest = max(longest, stay)
		if !containsID(cl.activeTasks(), tid) {
			recovered++
		}
	}
	watch.mu.Unlock()
	if recovered != orphans {
		t.Errorf("%d orphaned active tasks, only %d recovered", orphans, recovered)
	}
	cl.report("kill_worker", wall, "db=%s kills=5 (each mid-step) held_from_terminal=%d orphaned_active_tasks=%d recovered=%d longest_orphan_s=%.0f %s",
		cl.db, doneAtHold, orphans, recovered, longest.Seconds(), res)
}

func containsID(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// testWipeRedis: FLUSHALL on the private test redis-server mid-batch; the recovery sweep
// (CRM_SWEEP_INTERVAL=2s) rebuilds the queue from the database. The wipe lands mid-batch
// by construction: the simulated host holds its requests (steps in flight, the rest of the
// batch queued behind them) from before the wipe until after it.
func testWipeRedis(t *testing.T) {
	n := crashItems(t)
	cl := newCluster(t, clusterOpts{host: hostsim.Options{Latency: 5 * time.Millisecond}})
	items, good := genItems(cl.up, n, "wr")
	begin := time.Now()
	id := cl.submit("wipe-redis", items)

	// Wipe once about a quarter of the items are done (or a minute has passed), while
	// the host holds the steps in flight.
	waitFor(time.Minute, func() bool { return cl.progress(id) >= n/4 })
	release := cl.hs.Hold()
	defer release()
	if !waitFor(time.Minute, func() bool { return len(cl.hs.Held()) > 0 }) {
		t.Fatalf("no step called the host within a minute of the hold\n%s", cl.logs())
	}
	done := cl.progress(id)
	if done >= n {
		t.Fatalf("every item is terminal while the host holds a step: %d/%d", done, n)
	}
	ctx := context.Background()
	before, _ := cl.rdb.DBSize(ctx).Result()
	if err := cl.rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatalf("FLUSHALL on the private redis: %v", err)
	}
	wipedAt := time.Now()
	held := len(cl.hs.Held())
	release()
	t.Logf("FLUSHALL at %.1fs with %d/%d items terminal, %d host requests in flight, %d keys in redis",
		wipedAt.Sub(begin).Seconds(), done, n, held, before)

	got := cl.waitTerminal(id, envDuration(t, "CRM_CRASH_TIMEOUT", 5*time.Minute))
	wall := time.Since(begin)
	res := cl.checkConsistency(map[string][]store.Item{id: got}, good)
	cl.report("wipe_redis", wall, "db=%s wiped_at_terminal=%d in_flight=%d redis_keys_wiped=%d after_wipe_s=%.1f %s",
		cl.db, done, held, before, time.Since(wipedAt).Seconds(), res)
}

// testKillAPIDuringSubmission: the api is killed with SIGKILL while POST /api/v1/batches
// is in flight. After the restart the batch exists completely (and finishes) or not at all
// (and the operator submits it again); it is never half-written.
func testKillAPIDuringSubmission(t *testing.T) {
	n := crashItems(t)
	rng := testRand(t)
	cl := newCluster(t, clusterOpts{})
	allGood := map[string]bool{}

	// Calibrate: how long does the api take to accept a batch of n items? A dry run on a
	// second registration of the same host writes nothing to the host or its ledger.
	calHost := cl.registerHost("calibration", cl.adminKey)
	calItems, _ := genItems(cl.up, n, "cal")
	calBody := mustJSON(t, map[string]any{"host_id": calHost, "name": "calibration", "dry_run": true, "items": calItems})
	t0 := time.Now()
	if code, raw, err := rawPost(cl.c.Base+"/api/v1/batches", relToken, calBody, time.Minute); code != 201 {
		t.Fatalf("calibration submit: %d %v %s", code, err, raw)
	}
	took := time.Since(t0)
	t.Logf("a %d-item submission takes %s", n, took)

	begin := time.Now()
	batches := map[string][]store.Item{}
	var outcomes []string
	const rounds = 3
	lo, hi := time.Duration(0), took*3/2
	for r := 0; r < rounds; r++ {
		name := fmt.Sprintf("kill-api-%d", r)
		items, good := genItems(cl.up, n, fmt.Sprintf("ka%d", r))
		for k, v := range good {
			allGood[k] = v
		}
		body := mustJSON(t, map[string]any{"host_id": cl.hostID, "name": name, "items": items})
		type answer struct {
			code int
			raw  []byte
			err  error
		}
		ch := make(chan answer, 1)
		go func() {
			code, raw, err := rawPost(cl.c.Base+"/api/v1/batches", relToken, body, time.Minute)
			ch <- answer{code, raw, err}
		}()
		// Kill at a random point of [lo, hi], a window that starts as 0–1.5 × the measured
		// submission time and narrows round by round around the commit (a kill that left
		// nothing raises lo, one that came after the answer lowers hi), so that the later
		// rounds aim at the moment between the commit and the answer.
		delay := lo + time.Duration(float64(hi-lo)*(0.25+0.5*rng.Float64()))
		time.Sleep(delay)
		cl.mu.Lock()
		api := cl.api
		cl.mu.Unlock()
		cl.kill(api)
		ans := <-ch
		cl.startAPI()

		// Find the batch by name.
		var list struct {
			Items []struct {
				store.Batch
				Counts map[string]int `json:"counts"`
			} `json:"items"`
		}
		if code := cl.c.do(t, "GET", "/api/v1/batches?host_id="+cl.hostID+"&page_size=100", nil, &list); code != 200 {
			t.Fatalf("list batches: %d", code)
		}
		var found []string
		for _, b := range list.Items {
			if b.Name == name {
				found = append(found, b.ID)
			}
		}
		var outcome string
		switch {
		case len(found) > 1:
			t.Fatalf("round %d: %d batches named %s after one submission", r, len(found), name)
		case len(found) == 1:
			its, ok := cl.batchItems(found[0])
			if !ok || len(its) != n {
				t.Fatalf("round %d: batch %s half-written: %d of %d items", r, found[0], len(its), n)
			}
			var b store.Batch
			cl.c.do(t, "GET", "/api/v1/batches/"+found[0], nil, &b)
			if b.ItemCount != n {
				t.Fatalf("round %d: batch %s says item_count %d, want %d", r, found[0], b.ItemCount, n)
			}
			batches[found[0]] = nil
			if ans.code == 201 {
				outcome = "complete (answered 201 before the kill)"
				hi = delay
			} else {
				outcome = "complete (committed, answer lost)"
			}
		default:
			if ans.code == 201 {
				var sub struct {
					Batch store.Batch `json:"batch"`
				}
				_ = json.Unmarshal(ans.raw, &sub)
				t.Fatalf("round %d: the api answered 201 (batch %s) but the batch is gone after the restart", r, sub.Batch.ID)
			}
			// Nothing written: the operator submits again.
			batches[cl.submit(name, items)] = nil
			outcome = "absent (resubmitted)"
			lo = delay
		}
		errText := ""
		if ans.err != nil {
			errText = ans.err.Error()
			if i := strings.LastIndex(errText, ": "); i >= 0 {
				errText = errText[i+2:]
			}
		}
		outcomes = append(outcomes, fmt.Sprintf("round %d: kill after %s → http %d %s → batch %s", r, delay.Round(time.Millisecond), ans.code, errText, outcome))
	}
	for _, o := range outcomes {
		t.Log(o)
	}
	ids := make([]string, 0, len(batches))
	for id := range batches {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		batches[id] = cl.waitTerminal(id, envDuration(t, "CRM_CRASH_TIMEOUT", 5*time.Minute))
	}
	wall := time.Since(begin)
	res := cl.checkConsistency(batches, allGood)
	kinds := map[string]int{}
	for _, o := range outcomes {
		kinds[o[strings.LastIndex(o, "→ batch ")+len("→ batch "):]]++
	}
	cl.report("kill_api_during_submission", wall, "db=%s rounds=%d submit_time=%s outcomes=%v %s", cl.db, rounds, took.Round(time.Millisecond), kinds, res)
}
