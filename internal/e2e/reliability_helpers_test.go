package e2e

// Shared machinery of the reliability tests (crash_test.go, faults_test.go): a split
// api + worker cluster on built binaries against a private redis-server, generated
// batches of many keys, and the consistency checks run after every scenario.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cn-relay-manager/cn-relay-manager/internal/apiclient"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/hostsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/upstreamsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
	"github.com/cn-relay-manager/cn-relay-manager/internal/testpg"
	"github.com/cn-relay-manager/cn-relay-manager/internal/testredis"
)

const relToken = "e2e-token-0123456789abcdef"

// crashItems is the batch size of the reliability tests: CRM_CRASH_ITEMS, default 40 (CI).
// The full size is CRM_CRASH_ITEMS=300.
func crashItems(t *testing.T) int {
	t.Helper()
	v := os.Getenv("CRM_CRASH_ITEMS")
	if v == "" {
		return 40
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 8 || n > 1000 {
		t.Fatalf("CRM_CRASH_ITEMS=%q: want a whole number between 8 and 1000", v)
	}
	return n
}

// envDuration reads a duration from the environment (tests' own knobs).
func envDuration(t *testing.T, key string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", key, v, err)
	}
	return d
}

// testRand returns a seeded random source; CRM_CRASH_SEED replays a run.
func testRand(t *testing.T) *mrand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("CRM_CRASH_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CRM_CRASH_SEED=%q: %v", v, err)
		}
		seed = s
	}
	t.Logf("random seed %d (replay with CRM_CRASH_SEED=%d)", seed, seed)
	return mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// relProviders are the providers the generated items spread over (provider id, model).
var relProviders = [][2]string{
	{"deepseek", "deepseek-flash"},
	{"kimi", "kimi-k2.6"},
	{"glm", "glm-5.1"},
	{"qwen", "qwen3.6-plus"},
	{"openai_compatible", ""},
}

// genItems registers n keys with the simulated providers and returns the batch items:
// every eighth key is invalid (the provider answers 401), the others are good. good maps
// item name → whether the item must end ready.
func genItems(up *upstreamsim.Server, n int, tag string) (items []map[string]any, good map[string]bool) {
	good = map[string]bool{}
	rnd := make([]byte, 6)
	_, _ = rand.Read(rnd)
	suffix := hex.EncodeToString(rnd)
	for i := 0; i < n; i++ {
		p := relProviders[i%len(relProviders)]
		key := fmt.Sprintf("sk-rel-%s-%04d-%s", tag, i, suffix)
		if p[0] == "glm" {
			key = fmt.Sprintf("rel%s%04d.%s", tag, i, suffix)
		}
		ok := i%8 != 7
		mode := upstreamsim.ModeOK
		if !ok {
			mode = upstreamsim.ModeInvalid
		}
		up.AddKey(key, mode)
		name := fmt.Sprintf("%s-%04d-%s", tag, i, p[0])
		it := map[string]any{"name": name, "base_url": up.BaseURL(p[0]), "api_key": key}
		if p[0] != "openai_compatible" {
			it["provider"] = p[0]
		}
		if p[1] != "" {
			it["models"] = []string{p[1]}
		}
		items = append(items, it)
		good[name] = ok
	}
	return items, good
}

// clusterOpts says how to build a cluster.
type clusterOpts struct {
	postgres bool // CRM_DATABASE_URL from testpg instead of SQLite
	workers  int  // worker processes (default 1)
	host     hostsim.Options
	// external, when set, is the sub2api host to register instead of a simulated one
	// (the real-host suite); host is then ignored.
	external *externalHost
	extraEnv []string
	// redisEnv replaces the private open redis-server with these settings (CRM_REDIS_URL
	// and friends); the cluster then has no redis/rdb of its own.
	redisEnv []string
}

// externalHost is a host the cluster does not start: its URL and admin API key.
type externalHost struct {
	URL, AdminKey string
}

// cluster is one api process and its workers, a private redis-server, a database, the
// simulated providers and host, and the host registered through the API.
type cluster struct {
	t                 *testing.T
	apiBin, workerBin string
	env               []string
	c                 apiClient
	redis             *testredis.Server
	rdb               *redis.Client
	up                *upstreamsim.Server
	hs                *hostsim.Server // nil with an external host
	hostURL           string
	hostID            string
	adminKey          string
	db                string // "sqlite" or "postgres"

	mu      sync.Mutex
	api     *proc
	workers []*proc
	all     []namedProc // every process started, for the logs
}

type namedProc struct {
	name string
	p    *proc
}

func newCluster(t *testing.T, o clusterOpts) *cluster {
	t.Helper()
	apiBin, workerBin := binaries(t)
	cl := &cluster{t: t, apiBin: apiBin, workerBin: workerBin, db: "sqlite"}
	if len(o.redisEnv) == 0 {
		cl.redis = testredis.Start(t)
		cl.rdb = redis.NewClient(&redis.Options{Addr: cl.redis.Addr})
		t.Cleanup(func() { _ = cl.rdb.Close() })
	}
	up, err := upstreamsim.Start(upstreamsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.Close)
	cl.up = up
	if o.external != nil {
		cl.hostURL, cl.adminKey = o.external.URL, o.external.AdminKey
	} else {
		hopts := o.host
		if hopts.Profile == "" {
			hopts.Profile = hostsim.Profile179
		}
		if hopts.AdminAPIKey == "" {
			hopts.AdminAPIKey = "admin-" + secret.RandomToken(32)
		}
		hs, err := hostsim.Start(hopts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(hs.Close)
		cl.hs, cl.hostURL, cl.adminKey = hs, hs.URL(), hopts.AdminAPIKey
	}

	dir, listen := t.TempDir(), freeAddr(t)
	cl.env = baseEnv(t, dir, listen)
	if len(o.redisEnv) == 0 {
		cl.env = append(cl.env, "CRM_REDIS_ADDR="+cl.redis.Addr)
	}
	cl.env = append(cl.env, o.redisEnv...)
	if o.postgres {
		cl.env = append(cl.env, "CRM_DATABASE_URL="+testpg.Start(t))
		cl.db = "postgres"
	}
	cl.env = append(cl.env, o.extraEnv...)
	cl.c = newAPIClient("http://"+listen, relToken)
	cl.startAPI()
	if o.workers <= 0 {
		o.workers = 1
	}
	for i := 0; i < o.workers; i++ {
		cl.startWorker(i)
	}
	cl.hostID = cl.registerHost("reliability-host", cl.adminKey)
	return cl
}

// startAPI starts the api and waits until it is ready. The listen port was picked free
// once (freeAddr) and may, after a kill, be taken for a moment as the local port of some
// outgoing connection; a start that fails with "address already in use" is repeated.
func (cl *cluster) startAPI() {
	cl.t.Helper()
	for try := 0; ; try++ {
		p := start(cl.t, cl.apiBin, cl.env)
		cl.mu.Lock()
		cl.api = p
		cl.all = append(cl.all, namedProc{fmt.Sprintf("api #%d", len(cl.all)), p})
		cl.mu.Unlock()
		ready := false
		waitEvery(100*time.Millisecond, 60*time.Second, func() bool {
			ready = cl.c.do(cl.t, "GET", "/readyz", nil, nil) == 200
			return ready || strings.Contains(p.output(), "address already in use") && try < 5
		})
		if ready {
			return
		}
		if !strings.Contains(p.output(), "address already in use") || try >= 5 {
			cl.t.Fatalf("api not ready after 60s; logs:\n%s", cl.logs())
		}
		cl.t.Logf("api start %d: listen address in use, starting again", try+1)
		p.stop(syscall.SIGKILL)
		time.Sleep(500 * time.Millisecond)
	}
}

// startWorker starts worker slot i (replacing a dead one).
func (cl *cluster) startWorker(i int) {
	cl.t.Helper()
	p := start(cl.t, cl.workerBin, cl.env)
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for len(cl.workers) <= i {
		cl.workers = append(cl.workers, nil)
	}
	cl.workers[i] = p
	cl.all = append(cl.all, namedProc{fmt.Sprintf("worker slot %d (pid %d)", i, p.cmd.Process.Pid), p})
}

// kill sends SIGKILL and reaps the process.
func (cl *cluster) kill(p *proc) { p.stop(syscall.SIGKILL) }

// logs returns the tail of every process's output.
func (cl *cluster) logs() string {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	var b strings.Builder
	for _, np := range cl.all {
		out := np.p.output()
		if len(out) > 12000 {
			out = "…" + out[len(out)-12000:]
		}
		fmt.Fprintf(&b, "--- %s ---\n%s\n", np.name, out)
	}
	return b.String()
}

func (cl *cluster) registerHost(name, adminKey string) string {
	cl.t.Helper()
	// The registration probes the host; with injected faults it may take a few tries.
	code, tries := 0, 0
	var h store.Host
	waitEvery(200*time.Millisecond, 0, func() bool {
		tries++
		code = cl.c.do(cl.t, "POST", "/api/v1/hosts", apiclient.HostRequest{Name: name, AdminURL: cl.hostURL, AdminAPIKey: adminKey}, &h)
		return code == 201 || tries == 15
	})
	if code == 201 {
		return h.ID
	}
	cl.t.Fatalf("register host: %d\n%s", code, cl.logs())
	return ""
}

// submit posts a batch and returns its ID.
func (cl *cluster) submit(name string, items []map[string]any) string {
	cl.t.Helper()
	var sub struct {
		Batch store.Batch `json:"batch"`
	}
	body := map[string]any{"host_id": cl.hostID, "name": name, "items": items}
	if code := cl.c.do(cl.t, "POST", "/api/v1/batches", body, &sub); code != 201 {
		cl.t.Fatalf("submit batch %s: %d\n%s", name, code, cl.logs())
	}
	return sub.Batch.ID
}

// batchItems lists every item of a batch.
func (cl *cluster) batchItems(id string) ([]store.Item, bool) {
	var all []store.Item
	for page := 1; ; page++ {
		var resp struct {
			Items []store.Item `json:"items"`
			Total int          `json:"total"`
		}
		if cl.c.do(cl.t, "GET", fmt.Sprintf("/api/v1/batches/%s/items?page=%d&page_size=1000", id, page), nil, &resp) != 200 {
			return nil, false
		}
		all = append(all, resp.Items...)
		if len(resp.Items) == 0 || len(all) >= resp.Total {
			return all, true
		}
	}
}

// progress is the number of terminal items of a batch (-1 when the API does not answer).
func (cl *cluster) progress(id string) int {
	items, ok := cl.batchItems(id)
	if !ok {
		return -1
	}
	n := 0
	for _, it := range items {
		if store.IsTerminal(it.Status) {
			n++
		}
	}
	return n
}

// waitTerminal waits until every item of the batch is terminal and returns the items.
func (cl *cluster) waitTerminal(id string, timeout time.Duration) []store.Item {
	cl.t.Helper()
	var last []store.Item
	if waitEvery(500*time.Millisecond, timeout, func() bool {
		items, ok := cl.batchItems(id)
		if !ok {
			return false
		}
		last = items
		for _, it := range items {
			if !store.IsTerminal(it.Status) {
				return false
			}
		}
		return len(items) > 0
	}) {
		return last
	}
	var stuck []string
	for _, it := range last {
		if !store.IsTerminal(it.Status) && len(stuck) < 20 {
			stuck = append(stuck, fmt.Sprintf("%s %s step=%s seq=%d next_run_at=%v", it.Name, it.Status, it.Step, it.Seq, it.NextRunAt))
		}
	}
	cl.t.Fatalf("batch %s: items not terminal after %s:\n%s\n%s", id, timeout, strings.Join(stuck, "\n"), cl.logs())
	return nil
}

// itemDetail is GET /batches/{id}/items/{item}.
type itemDetail struct {
	Item     store.Item      `json:"item"`
	Attempts []store.Attempt `json:"attempts"`
}

// attemptStats sums what the attempts of every item show.
type attemptStats struct {
	Attempts       int // attempt rows
	Retries        int // attempts with outcome retry (pipeline-level retries)
	MaxStepRetries int // largest number of retry attempts of one item in one step
	ItemsRetried   int // items with at least one retry attempt
	FailedExchange int // recorded host exchanges that failed (5xx or no answer): in-client retries
}

// checkResult is the outcome of checkConsistency.
type checkResult struct {
	Items, Ready, Failed, Duplicates int
	Groups                           int // target groups of the ready items
	Ledger                           map[string]int
	Stats                            attemptStats
}

func (r checkResult) String() string {
	return fmt.Sprintf("items=%d ready=%d groups=%d failed=%d duplicates=%d ledger=%v attempts=%d retry_attempts=%d items_retried=%d max_step_retries=%d failed_host_exchanges=%d",
		r.Items, r.Ready, r.Groups, r.Failed, r.Duplicates, r.Ledger, r.Stats.Attempts, r.Stats.Retries, r.Stats.ItemsRetried, r.Stats.MaxStepRetries, r.Stats.FailedExchange)
}

// maxStepRetries is the pipeline's bound on retries per step (pipeline.Settings.MaxRetries
// default; the processes do not override it).
const maxStepRetries = 6

// checkConsistency checks, after a scenario: every item terminal with its expected
// outcome (good keys ready, invalid keys failed/invalid_key); the simulated host holds one
// group, account and key per ready item and one user (no duplicates); the ledger lists
// exactly the host's objects; retries are bounded.
func (cl *cluster) checkConsistency(batches map[string][]store.Item, good map[string]bool) checkResult {
	t := cl.t
	t.Helper()
	var res checkResult
	for id, items := range batches {
		for _, it := range items {
			res.Items++
			want, known := good[it.Name]
			switch {
			case !known:
				t.Errorf("batch %s: unexpected item %q", id, it.Name)
			case !store.IsTerminal(it.Status):
				t.Errorf("%s: not terminal: %s (step %s)", it.Name, it.Status, it.Step)
			case want && it.Status != store.ItemReady:
				t.Errorf("%s: good key ended %s/%s: %s", it.Name, it.Status, it.FailureClass, it.FailureMessage)
			case !want && (it.Status != store.ItemFailed || it.FailureClass != "invalid_key"):
				t.Errorf("%s: invalid key ended %s/%s: %s", it.Name, it.Status, it.FailureClass, it.FailureMessage)
			}
			switch it.Status {
			case store.ItemReady:
				res.Ready++
			case store.ItemFailed:
				res.Failed++
			}
			cl.addAttemptStats(&res.Stats, id, it)
		}
	}
	if res.Stats.MaxStepRetries > maxStepRetries {
		t.Errorf("an item retried one step %d times, the bound is %d", res.Stats.MaxStepRetries, maxStepRetries)
	}

	st := cl.hs.State()
	c := cl.hs.Counts()
	// Pooled groups: one group and one end-user key per target group of the ready items,
	// one account per ready item, one managed user.
	groups := map[string]bool{}
	for _, items := range batches {
		for _, it := range items {
			if it.Status == store.ItemReady {
				groups[it.TargetGroup] = true
			}
		}
	}
	res.Groups = len(groups)
	if c.Groups != res.Groups || c.Accounts != res.Ready || c.Keys != res.Groups || c.Users != 1 {
		t.Errorf("host holds %+v for %d ready items in %d groups: duplicates or losses", c, res.Ready, res.Groups)
	}
	names := map[string]int{}
	for _, g := range st.Groups {
		names["group|"+g.Name]++
	}
	for _, a := range st.Accounts {
		names["account|"+a.Name]++
	}
	for _, k := range st.Keys {
		names["key|"+k.Name]++
	}
	for n, k := range names {
		if k > 1 {
			t.Errorf("host holds %d objects named %s", k, n)
			res.Duplicates += k - 1
		}
	}
	if extra := c.Groups - res.Groups; extra > 0 {
		res.Duplicates += extra
	}

	// The ledger lists exactly the host's objects.
	hostIDs := map[string]map[string]bool{store.TypeGroup: {}, store.TypeAccount: {}, store.TypeKey: {}, store.TypeUser: {}}
	for _, g := range st.Groups {
		hostIDs[store.TypeGroup][strconv.FormatInt(g.ID, 10)] = true
	}
	for _, a := range st.Accounts {
		hostIDs[store.TypeAccount][strconv.FormatInt(a.ID, 10)] = true
	}
	for _, k := range st.Keys {
		hostIDs[store.TypeKey][strconv.FormatInt(k.ID, 10)] = true
	}
	for _, u := range st.Users {
		hostIDs[store.TypeUser][strconv.FormatInt(u.ID, 10)] = true
	}
	ledger := map[string]map[string]int{store.TypeGroup: {}, store.TypeAccount: {}, store.TypeKey: {}, store.TypeUser: {}}
	res.Ledger = map[string]int{}
	for _, r := range cl.resources() {
		res.Ledger[r.Type]++
		if r.State == store.ResourceIntent || r.HostResourceID == nil {
			t.Errorf("ledger row %s %s left in state %s without a host id", r.Type, r.Name, r.State)
			continue
		}
		if r.State != store.ResourceCreated && r.State != store.ResourceAdopted {
			t.Errorf("ledger row %s %s in state %s", r.Type, r.Name, r.State)
			continue
		}
		if _, ok := ledger[r.Type]; !ok {
			t.Errorf("unexpected ledger row type %s (%s)", r.Type, r.Name)
			continue
		}
		ledger[r.Type][*r.HostResourceID]++
	}
	for typ, ids := range ledger {
		for id, n := range ids {
			if !hostIDs[typ][id] {
				t.Errorf("ledger lists %s %s, which the host does not hold", typ, id)
			}
			if n > 1 && typ != store.TypeUser {
				t.Errorf("ledger lists %s %s %d times", typ, id, n)
			}
		}
		for id := range hostIDs[typ] {
			if ids[id] == 0 {
				t.Errorf("host holds %s %s, which the ledger does not list", typ, id)
			}
		}
	}
	return res
}

func (cl *cluster) resources() []store.Resource {
	var all []store.Resource
	for page := 1; ; page++ {
		var resp struct {
			Items []store.Resource `json:"items"`
			Total int              `json:"total"`
		}
		if code := cl.c.do(cl.t, "GET", fmt.Sprintf("/api/v1/resources?host_id=%s&page=%d&page_size=1000", cl.hostID, page), nil, &resp); code != 200 {
			cl.t.Fatalf("list resources: %d", code)
		}
		all = append(all, resp.Items...)
		if len(resp.Items) == 0 || len(all) >= resp.Total {
			return all
		}
	}
}

func (cl *cluster) addAttemptStats(s *attemptStats, batchID string, it store.Item) {
	var d itemDetail
	if code := cl.c.do(cl.t, "GET", "/api/v1/batches/"+batchID+"/items/"+it.ID, nil, &d); code != 200 {
		cl.t.Errorf("get item %s: %d", it.ID, code)
		return
	}
	retried := false
	perStep := map[string]int{}
	seqs := map[int]bool{}
	for _, a := range d.Attempts {
		s.Attempts++
		// Each sequence number commits at most one attempt (the sequence guard).
		if seqs[a.Seq] {
			cl.t.Errorf("%s: two attempts committed at sequence %d (step %s): a duplicate delivery had an effect", it.Name, a.Seq, a.Step)
		}
		seqs[a.Seq] = true
		if a.Outcome == store.OutcomeRetry {
			s.Retries++
			retried = true
			perStep[a.Step]++
			s.MaxStepRetries = max(s.MaxStepRetries, perStep[a.Step])
		}
		for _, x := range a.Evidence {
			if x.Target != "upstream" && (x.Status >= 500 || (x.Status == 0 && x.Error != "")) {
				s.FailedExchange++
			}
		}
	}
	if retried {
		s.ItemsRetried++
	}
}

// retryExamples returns up to n messages of retry attempts (for the logs).
func (cl *cluster) retryExamples(batchID string, items []store.Item, n int) []string {
	var out []string
	for _, it := range items {
		var d itemDetail
		if cl.c.do(cl.t, "GET", "/api/v1/batches/"+batchID+"/items/"+it.ID, nil, &d) != 200 {
			continue
		}
		for _, a := range d.Attempts {
			if a.Outcome == store.OutcomeRetry && len(out) < n {
				out = append(out, fmt.Sprintf("%s %s #%d: %s", it.Name, a.Step, a.Number, a.Message))
			}
		}
	}
	return out
}

// activeTasks lists the IDs of the tasks asynq holds as active (being processed).
func (cl *cluster) activeTasks() []string {
	ids, err := cl.rdb.LRange(context.Background(), "asynq:{default}:active", 0, -1).Result()
	if err != nil {
		return nil
	}
	sort.Strings(ids)
	return ids
}

// logHealth counts the ERROR lines of every process and fails on a panic.
func (cl *cluster) logHealth() (errorLines int) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for _, np := range cl.all {
		for _, line := range strings.Split(np.p.output(), "\n") {
			if strings.Contains(line, "level=ERROR") || strings.Contains(line, `"level":"ERROR"`) {
				errorLines++
			}
			if strings.HasPrefix(line, "panic:") || strings.Contains(line, "DATA RACE") {
				cl.t.Errorf("%s: %s", np.name, line)
			}
		}
	}
	return errorLines
}

// report logs a result line in a fixed shape, for docs/reliability.md.
func (cl *cluster) report(scenario string, wall time.Duration, format string, args ...any) {
	cl.t.Helper()
	cl.t.Logf("RESULT %s wall=%.1fs %s error_log_lines=%d", scenario, wall.Seconds(), fmt.Sprintf(format, args...), cl.logHealth())
}

// rawPost posts a JSON body with its own client (used while the api gets killed).
func rawPost(url, token string, body []byte, timeout time.Duration) (int, []byte, error) {
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
