// Package e2e runs the built binaries the way an operator would: separate api and worker
// processes against a private redis-server, and the all-in-one api killed mid-batch and
// started again.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/apiclient"
	"github.com/cn-relay-manager/cn-relay-manager/internal/batch"
	"github.com/cn-relay-manager/cn-relay-manager/internal/demo"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
	"github.com/cn-relay-manager/cn-relay-manager/internal/testredis"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds cmd/api and cmd/worker once per test binary run.
func binaries(t *testing.T) (api, worker string) {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "crm-e2e-bin-")
		if buildErr != nil {
			return
		}
		for _, name := range []string{"api", "worker"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, name), "../../cmd/"+name)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("build %s: %v\n%s", name, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "api"), filepath.Join(binDir, "worker")
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type proc struct {
	cmd *exec.Cmd
	log *bytes.Buffer
	mu  *sync.Mutex
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func start(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{log: &bytes.Buffer{}, mu: &sync.Mutex{}}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	w := lockedWriter{p.mu, p.log}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop(syscall.SIGKILL) })
	return p
}

func (p *proc) stop(sig syscall.Signal) {
	if p.cmd.ProcessState != nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	_ = p.cmd.Wait()
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// apiClient is the tests' use of internal/apiclient: do answers the status the tests
// assert on (0 when no answer came).
type apiClient struct{ *apiclient.Client }

func newAPIClient(base, token string) apiClient {
	c := apiclient.New(base, token)
	c.HTTP = &http.Client{}
	return apiClient{c}
}

func (c apiClient) do(t *testing.T, method, path string, in, out any) int {
	t.Helper()
	p, rawQuery, _ := strings.Cut(path, "?")
	q, _ := url.ParseQuery(rawQuery)
	code, raw, err := c.Call(context.Background(), method, p, q, in, out)
	var ae *apiclient.Error
	if err != nil && code != 0 && !errors.As(err, &ae) {
		t.Fatalf("%s %s: decode: %v: %s", method, path, err, raw)
	}
	return code
}

// waitEvery checks cond every interval until it holds or timeout passes (apiclient.Poll,
// the one wait loop of every API caller); it reports whether cond held. Tests wait for
// conditions this way instead of sleeping a guessed time.
func waitEvery(interval, timeout time.Duration, cond func() bool) bool {
	return apiclient.Poll(context.Background(), interval, timeout, func(context.Context) (bool, error) { return cond(), nil }) == nil
}

// waitFor is waitEvery at 50 ms.
func waitFor(timeout time.Duration, cond func() bool) bool {
	return waitEvery(50*time.Millisecond, timeout, cond)
}

func (c apiClient) waitReady(t *testing.T, p *proc) {
	t.Helper()
	if !waitEvery(100*time.Millisecond, 60*time.Second, func() bool { return c.do(t, "GET", "/readyz", nil, nil) == 200 }) {
		t.Fatalf("api not ready; log:\n%s", p.output())
	}
}

func (c apiClient) submit(t *testing.T, sims *demo.Simulators) string {
	t.Helper()
	var host store.Host
	if code := c.do(t, "POST", "/api/v1/hosts", apiclient.HostRequest{Name: "e2e-host", AdminURL: sims.Host.URL(), AdminAPIKey: sims.AdminKey}, &host); code != 201 {
		t.Fatalf("register host: %d", code)
	}
	var sub struct {
		Batch store.Batch `json:"batch"`
	}
	if code := c.do(t, "POST", "/api/v1/batches", batch.Request{HostID: host.ID, Items: sims.Items()}, &sub); code != 201 {
		t.Fatalf("submit batch: %d", code)
	}
	return sub.Batch.ID
}

func (c apiClient) waitBatch(t *testing.T, id string, timeout time.Duration, logs func() string) []store.Item {
	t.Helper()
	_, err := c.WaitBatch(context.Background(), id, 300*time.Millisecond, timeout, nil)
	if err != nil {
		t.Fatalf("batch %s not finished in %s (%v); logs:\n%s", id, timeout, err, logs())
	}
	var page struct {
		Items []store.Item `json:"items"`
	}
	c.do(t, "GET", "/api/v1/batches/"+id+"/items", nil, &page)
	return page.Items
}

func checkItems(t *testing.T, items []store.Item, sims *demo.Simulators) {
	t.Helper()
	want := demo.Expected()
	ready := 0
	groups := map[string]bool{}
	for _, it := range items {
		w := want[it.Name]
		if it.Status != w[0] || it.FailureClass != w[1] {
			t.Errorf("%s: got %s/%s want %s/%s (%s)", it.Name, it.Status, it.FailureClass, w[0], w[1], it.FailureMessage)
		}
		if it.Status == store.ItemReady {
			ready++
			groups[it.TargetGroup] = true
		}
	}
	// Pooled groups: one group per provider, one account per item, one managed user with
	// one key per group.
	if c := sims.Host.Counts(); c.Groups != len(groups) || c.Accounts != ready || c.Keys != len(groups) || c.Users != 1 {
		t.Errorf("host holds %+v for %d ready items in %d groups: duplicates or losses", c, ready, len(groups))
	}
}

func baseEnv(t *testing.T, dir, listen string) []string {
	return []string{
		"CRM_LISTEN_ADDR=" + listen,
		"CRM_DATA_DIR=" + dir,
		"CRM_DATABASE_URL=" + filepath.Join(dir, "crm.db"),
		"CRM_API_TOKEN=e2e-token-0123456789abcdef",
		"CRM_MASTER_KEY=e2e-master-key-0123456789abcdef",
		"CRM_WINDOW_DEADLINE=60s",
		"CRM_WINDOW_SCHEDULE=1s,2s,3s",
		"CRM_SWEEP_INTERVAL=2s",
		"CRM_ALLOW_PRIVATE_UPSTREAMS=true", // the simulated providers listen on loopback
	}
}

// split is an api process and worker processes against a private redis-server, with the
// demo's simulators.
type split struct {
	api     *proc
	workers []*proc
	c       apiClient
	sims    *demo.Simulators
	dir     string
	redis   *testredis.Server
}

func (s *split) logs() string {
	out := s.api.output()
	for i, w := range s.workers {
		out += fmt.Sprintf("\n--- worker %d ---\n%s", i+1, w.output())
	}
	return out
}

// startSplit starts the simulators (host latency hostLatency), redis, the api and
// workers worker processes; extra CRM_* settings are appended to the environment.
func startSplit(t *testing.T, workers int, hostLatency time.Duration, extra ...string) *split {
	t.Helper()
	apiBin, workerBin := binaries(t)
	s := &split{redis: testredis.Start(t), dir: t.TempDir()}
	var err error
	if s.sims, err = demo.StartSimulators("0.1.179", hostLatency); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.sims.Close)
	listen := freeAddr(t)
	env := append(append(baseEnv(t, s.dir, listen), "CRM_REDIS_ADDR="+s.redis.Addr), extra...)
	s.api = start(t, apiBin, env)
	s.c = newAPIClient("http://"+listen, "e2e-token-0123456789abcdef")
	s.c.waitReady(t, s.api)
	for i := 0; i < workers; i++ {
		s.workers = append(s.workers, start(t, workerBin, env))
	}
	return s
}

// Separate api and worker processes against a private redis-server.
func TestSplitProcessesEndToEnd(t *testing.T) {
	s := startSplit(t, 1, 0)
	c, sims, api, worker := s.c, s.sims, s.api, s.workers[0]

	if code := newAPIClient(c.Base, "").do(t, "GET", "/api/v1/batches", nil, nil); code != 401 {
		t.Errorf("unauthenticated request answered %d, want 401", code)
	}
	id := c.submit(t, sims)
	items := c.waitBatch(t, id, 2*time.Minute, func() string { return api.output() + "\n--- worker ---\n" + worker.output() })
	checkItems(t, items, sims)

	// Graceful shutdown on SIGTERM.
	worker.stop(syscall.SIGTERM)
	if st := worker.cmd.ProcessState; st == nil || st.ExitCode() != 0 {
		t.Errorf("worker did not shut down cleanly on SIGTERM: %v\n%s", st, worker.output())
	}
	for _, k := range demo.Keys() {
		if strings.Contains(api.output()+worker.output(), k) {
			t.Errorf("an upstream key appears in the process logs")
		}
	}
}

// The all-in-one process killed with SIGKILL mid-batch and started again finishes the
// batch from the database (recovery sweep) without duplicate host objects.
func TestAllInOneKilledMidBatchRecovers(t *testing.T) {
	apiBin, _ := binaries(t)
	sims, err := demo.StartSimulators("0.1.179", 150*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer sims.Close()
	dir, listen := t.TempDir(), freeAddr(t)
	env := baseEnv(t, dir, listen)
	first := start(t, apiBin, env)
	c := newAPIClient("http://"+listen, "e2e-token-0123456789abcdef")
	c.waitReady(t, first)
	id := c.submit(t, sims)

	// Wait until the host holds at least one object, then kill mid-batch.
	deadline := time.Now().Add(30 * time.Second)
	for sims.Host.Counts().Accounts == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	var b store.Batch
	c.do(t, "GET", "/api/v1/batches/"+id, nil, &b)
	if b.Status != store.BatchRunning && b.Status != store.BatchQueued {
		t.Fatalf("batch already %s before the kill; the test needs a slower host", b.Status)
	}
	first.stop(syscall.SIGKILL)

	second := start(t, apiBin, env)
	c.waitReady(t, second)
	items := c.waitBatch(t, id, 2*time.Minute, second.output)
	checkItems(t, items, sims)
}
