package e2e

// The Redis an operator really runs, with the built binaries: an ACL user with the
// default user off, TLS with a private CA, Sentinel with a failover in the middle of a
// batch, and the fail-fast answers when CRM_REDIS_URL is wrong.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/hostsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
	"github.com/cn-relay-manager/cn-relay-manager/internal/testredis"
)

const redisTestPW = "e2e-Redis-pw-7f3a9c0d1e2b"

// statusCounts counts items terminal and ready.
func statusCounts(items []store.Item) (terminal, ready int) {
	for _, it := range items {
		if store.IsTerminal(it.Status) {
			terminal++
		}
		if it.Status == store.ItemReady {
			ready++
		}
	}
	return
}

// noSecretInLogs fails when a process log shows s.
func (cl *cluster) noSecretInLogs(s string) {
	cl.t.Helper()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for _, np := range cl.all {
		if strings.Contains(np.p.output(), s) {
			cl.t.Errorf("%s: the log shows the Redis password", np.name)
		}
	}
}

// warnSummary counts the WARN and ERROR lines of every process by message (for the
// figures in docs/reliability.md).
func (cl *cluster) warnSummary() string {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	counts := map[string]int{}
	for _, np := range cl.all {
		for _, line := range strings.Split(np.p.output(), "\n") {
			var rec struct{ Level, Msg string }
			if json.Unmarshal([]byte(line), &rec) == nil && (rec.Level == "WARN" || rec.Level == "ERROR") {
				msg := rec.Msg
				if i := strings.Index(msg, " id="); i > 0 {
					msg = msg[:i] + " …" // one line per message, not per task
				}
				if len(msg) > 90 {
					msg = msg[:90] + "…"
				}
				counts[rec.Level+" "+msg]++
			}
		}
	}
	var out []string
	for k, v := range counts {
		out = append(out, fmt.Sprintf("%4d× %s", v, k))
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// getRaw GETs a path with the token and returns status and body.
func (cl *cluster) getRaw(path string) (int, string) {
	req, _ := http.NewRequest("GET", cl.c.Base+path, nil)
	req.Header.Set("Authorization", "Bearer "+cl.c.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A split deployment (api + 2 workers) over CRM_REDIS_URL=redis://crm:…@…/3 with the
// default user off imports a batch end to end, in database 3 only, as the ACL user only.
func TestRedisACLSplitDeployment(t *testing.T) {
	r := testredis.StartWith(t, testredis.Options{Username: "crm", Password: redisTestPW})
	cl := newCluster(t, clusterOpts{workers: 2, redisEnv: []string{"CRM_REDIS_URL=" + r.URL(3)},
		extraEnv: []string{"CRM_HOST_CONCURRENCY=4", "CRM_RECONCILE_CRON=@every 2s"}})
	items, good := genItems(cl.up, 40, "acl")
	start := time.Now()
	id := cl.submit("acl", items)
	done := cl.waitTerminal(id, 2*time.Minute)
	res := cl.checkConsistency(map[string][]store.Item{id: done}, good)

	ctx := context.Background()
	admin := r.Client(t, 3)
	if n, _ := admin.Exists(ctx, "asynq:queues").Result(); n != 1 {
		t.Error("no asynq queue in database 3")
	}
	if n, _ := r.Client(t, 0).DBSize(ctx).Result(); n != 0 {
		t.Errorf("database 0 holds %d keys", n)
	}
	stats, _ := admin.Info(ctx, "errorstats").Result()
	for _, bad := range []string{"NOAUTH", "WRONGPASS", "NOPERM"} {
		if strings.Contains(stats, "errorstat_"+bad) {
			t.Errorf("Redis answered %s to some connection:\n%s", bad, stats)
		}
	}
	for _, p := range []string{"/readyz", "/monitoring/api/redis_info", "/monitoring/api/servers", "/metrics"} {
		code, body := cl.getRaw(p)
		if code != 200 {
			t.Errorf("GET %s: %d %.200s", p, code, body)
		}
		if strings.Contains(body, redisTestPW) {
			t.Errorf("GET %s shows the Redis password", p)
		}
	}
	// The container health checks of docker-compose.yml.
	for _, bin := range []string{cl.apiBin, cl.workerBin} {
		if code, out := healthcheck(t, bin, cl.env); code != 0 {
			t.Errorf("%s healthcheck exited %d: %s", filepath.Base(bin), code, out)
		}
	}
	cl.noSecretInLogs(redisTestPW)
	cl.report("redis_acl", time.Since(start), "%s", res)
}

// TestRedisTLSSplitDeployment: the same over rediss:// to a TLS-only redis-server whose
// certificate comes from a CA generated in the test, given as CRM_REDIS_TLS_CA.
func TestRedisTLSSplitDeployment(t *testing.T) {
	files := testredis.NewTLS(t)
	r := testredis.StartWith(t, testredis.Options{Username: "crm", Password: redisTestPW, TLS: files})
	cl := newCluster(t, clusterOpts{workers: 1, redisEnv: []string{"CRM_REDIS_URL=" + r.URL(1), "CRM_REDIS_TLS_CA=" + files.CAFile}})
	items, good := genItems(cl.up, 24, "tls")
	start := time.Now()
	id := cl.submit("tls", items)
	done := cl.waitTerminal(id, 2*time.Minute)
	res := cl.checkConsistency(map[string][]store.Item{id: done}, good)
	if n, _ := r.Client(t, 1).Exists(context.Background(), "asynq:queues").Result(); n != 1 {
		t.Error("no asynq queue in database 1 of the TLS server")
	}
	cl.noSecretInLogs(redisTestPW)
	cl.report("redis_tls", time.Since(start), "%s", res)
}

// TestRedisSentinelFailover: api and two workers on a redis-sentinel:// URL import 200
// items; the master is SIGKILLed mid-batch and the sentinel promotes the replica. Every
// item still ends terminal with its expected outcome, none is lost, no host object is
// created twice, and the ledger lists exactly the host's objects.
//
// The kill lands mid-batch by construction: every host request takes 25 ms and at most 4
// steps talk to the host at once (CRM_HOST_CONCURRENCY), so the ~175 good items, each
// needing several host requests, cannot finish in less than about 6 s; the master is
// killed as soon as 10 items are ready, while at least 50 are not yet terminal (checked,
// the test fails if the bound ever breaks).
func TestRedisSentinelFailover(t *testing.T) {
	set := testredis.StartSentinel(t, testredis.SentinelOptions{Username: "crm", Password: redisTestPW})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sentinel, master and replica logs:\n%s", set.Log())
		}
	})
	const n = 200
	cl := newCluster(t, clusterOpts{workers: 2, host: hostsim.Options{Latency: 25 * time.Millisecond},
		redisEnv: []string{"CRM_REDIS_URL=" + set.URL(2)},
		extraEnv: []string{"CRM_HOST_CONCURRENCY=4", "CRM_WORKER_CONCURRENCY=8"}})
	items, good := genItems(cl.up, n, "sf")
	start := time.Now()
	id := cl.submit("sentinel-failover", items)

	var terminalAtKill, readyAtKill int
	deadline := time.Now().Add(90 * time.Second)
	for {
		its, ok := cl.batchItems(id)
		if ok {
			terminalAtKill, readyAtKill = statusCounts(its)
			if terminalAtKill > n-50 {
				t.Fatalf("%d of %d items terminal with only %d ready: the batch runs too fast for a mid-batch kill", terminalAtKill, n, readyAtKill)
			}
			if readyAtKill >= 10 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 10 items ready after 90s\n%s", cl.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	killAt := time.Now()
	if !set.Master.Kill() {
		t.Fatal("the master was not running")
	}
	t.Logf("SIGKILL of the master %s after %.1fs with %d/%d terminal (%d ready)", set.Master.Addr, killAt.Sub(start).Seconds(), terminalAtKill, n, readyAtKill)

	// The sentinel promotes the replica.
	ctx := context.Background()
	var promoted time.Duration
	for {
		if addr, err := set.MasterAddr(ctx, ""); err == nil && addr == set.Replica.Addr {
			promoted = time.Since(killAt)
			break
		}
		if time.Since(killAt) > 60*time.Second {
			t.Fatalf("the sentinel did not promote the replica within 60s\n%s", set.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The queue works again: the promoted replica counts a newly processed task, and the
	// api's readiness check (through its failover client) passes.
	rc := set.Replica.Client(t, 2)
	base, _ := rc.Get(ctx, "asynq:{default}:processed").Int()
	var resumed, readyAgain time.Duration
	for resumed == 0 || readyAgain == 0 {
		if v, _ := rc.Get(ctx, "asynq:{default}:processed").Int(); resumed == 0 && v > base {
			resumed = time.Since(killAt)
		}
		if code, _ := cl.getRaw("/readyz"); readyAgain == 0 && code == 200 {
			readyAgain = time.Since(killAt)
		}
		if its, ok := cl.batchItems(id); ok && resumed == 0 {
			if term, _ := statusCounts(its); term == n {
				resumed = time.Since(killAt) // finished before a new task was counted
			}
		}
		if time.Since(killAt) > 2*time.Minute {
			t.Fatalf("the queue did not resume within 2 min of the kill (processed %d → ?, readyz after %s)\n%s", base, readyAgain, cl.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	done := cl.waitTerminal(id, 3*time.Minute)
	finished := time.Since(killAt)
	res := cl.checkConsistency(map[string][]store.Item{id: done}, good)

	cl.mu.Lock()
	for i, w := range cl.workers {
		if w.cmd.ProcessState != nil {
			t.Errorf("worker %d exited during the failover: %v", i, w.cmd.ProcessState)
		}
	}
	if cl.api.cmd.ProcessState != nil {
		t.Errorf("the api exited during the failover: %v", cl.api.cmd.ProcessState)
	}
	cl.mu.Unlock()
	if code, body := cl.getRaw("/readyz"); code != 200 {
		t.Errorf("/readyz after the failover: %d %s", code, body)
	}
	if keys, _ := set.Replica.Client(t, 2).Keys(ctx, "asynq:*").Result(); len(keys) == 0 {
		t.Error("the promoted replica holds no queue in database 2")
	}
	cl.noSecretInLogs(redisTestPW)
	t.Logf("warnings and errors logged:\n%s", cl.warnSummary())
	cl.report("sentinel_failover", time.Since(start),
		"terminal_at_kill=%d/%d promoted_after=%.1fs queue_resumed_after=%.1fs readyz_ok_after=%.1fs finished_after_kill=%.1fs %s",
		terminalAtKill, n, promoted.Seconds(), resumed.Seconds(), readyAgain.Seconds(), finished.Seconds(), res)
}

// TestRedisFailFast: a wrong password, a failed TLS verification, no reachable sentinel
// and an unknown master name each make the worker exit non-zero, and the api's /readyz
// answer 503, within 20 s, with a message naming CRM_REDIS_URL and the cause but not the
// password.
func TestRedisFailFast(t *testing.T) {
	apiBin, workerBin := binaries(t)
	acl := testredis.StartWith(t, testredis.Options{Username: "crm", Password: redisTestPW})
	files := testredis.NewTLS(t)
	tlsSrv := testredis.StartWith(t, testredis.Options{Password: redisTestPW, TLS: files})
	set := testredis.StartSentinel(t, testredis.SentinelOptions{Password: redisTestPW})
	dead1, dead2 := testredis.Start(t), testredis.Start(t)
	dead1.Stop()
	dead2.Stop()
	cases := []struct {
		name, url, cause string
	}{
		{"wrong_password", strings.Replace(acl.URL(0), redisTestPW, "wrong-"+redisTestPW, 1), "authentication failed"},
		{"tls_verification", tlsSrv.URL(0), "TLS verification failed"},
		{"no_sentinel", "redis-sentinel://:" + redisTestPW + "@" + dead1.Addr + "," + dead2.Addr + "/0?master=" + set.MasterName, "no sentinel reachable"},
		{"unknown_master", strings.Replace(set.URL(0), "master="+set.MasterName, "master=not-"+set.MasterName, 1), "do not know a master named"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, listen := t.TempDir(), freeAddr(t)
			env := append(baseEnv(t, dir, listen), "CRM_REDIS_URL="+tc.url)
			started := time.Now()
			w := start(t, workerBin, env)
			exited := make(chan struct{})
			go func() { _ = w.cmd.Wait(); close(exited) }()
			select {
			case <-exited:
			case <-time.After(20 * time.Second):
				t.Fatalf("worker still running after 20s:\n%s", w.output())
			}
			out := w.output()
			if w.cmd.ProcessState.ExitCode() == 0 {
				t.Errorf("worker exited 0:\n%s", out)
			}
			if !strings.Contains(out, "CRM_REDIS_URL") || !strings.Contains(out, tc.cause) {
				t.Errorf("worker message does not name CRM_REDIS_URL and %q:\n%s", tc.cause, out)
			}
			if strings.Contains(out, redisTestPW) {
				t.Errorf("worker output shows the password:\n%s", out)
			}
			t.Logf("worker exited %d after %.1fs: %s", w.cmd.ProcessState.ExitCode(), time.Since(started).Seconds(), lastLine(out))
			if code, out := healthcheck(t, workerBin, env); code == 0 || !strings.Contains(out, tc.cause) || strings.Contains(out, redisTestPW) {
				t.Errorf("worker healthcheck exited %d: %s", code, out)
			}

			started = time.Now()
			a := start(t, apiBin, env)
			var body struct {
				Status, Reason, Message string
			}
			code := 0
			for time.Since(started) < 20*time.Second {
				resp, err := http.Get("http://" + listen + "/readyz")
				if err == nil {
					code = resp.StatusCode
					raw, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					_ = json.Unmarshal(raw, &body)
					if code == 503 && body.Message != "" {
						break
					}
				}
				time.Sleep(200 * time.Millisecond)
			}
			if code != 503 || body.Reason != "queue" {
				t.Fatalf("/readyz answered %d %+v within 20s\n%s", code, body, a.output())
			}
			if !strings.HasPrefix(body.Message, "CRM_REDIS_URL: ") || !strings.Contains(body.Message, tc.cause) {
				t.Errorf("/readyz message %q does not name CRM_REDIS_URL and %q", body.Message, tc.cause)
			}
			if strings.Contains(body.Message, redisTestPW) || strings.Contains(a.output(), redisTestPW) {
				t.Errorf("the api shows the password")
			}
			t.Logf("/readyz 503 after %.1fs: %s", time.Since(started).Seconds(), body.Message)
			if code, out := healthcheck(t, apiBin, env); code == 0 || !strings.Contains(out, tc.cause) {
				t.Errorf("api healthcheck exited %d: %s", code, out)
			}
		})
	}
}

// healthcheck runs "<bin> healthcheck" with env and returns its exit code and output.
func healthcheck(t *testing.T, bin string, env []string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, "healthcheck")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s healthcheck: %v", bin, err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
