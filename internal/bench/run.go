package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/apiclient"
)

// batchState is what the bench reads of GET /api/v1/batches/{id}.
type batchState struct {
	Status     string         `json:"status"`
	Counts     map[string]int `json:"counts"`
	FinishedAt *time.Time     `json:"finished_at"`
}

// done counts the items in a final state.
func (b batchState) done() int {
	n := 0
	for st, c := range b.Counts {
		switch st {
		case "ready", "ready_with_warnings", "failed", "skipped", "cancelled", "rolled_back":
			n += c
		}
	}
	return n
}

type simInfo struct {
	HostURL   string            `json:"host_url"`
	StatsURL  string            `json:"stats_url"`
	AdminKey  string            `json:"admin_key"`
	KeyPrefix string            `json:"key_prefix"`
	BaseURLs  map[string]string `json:"base_urls"`
}

func Run(ctx context.Context, o Options, progress io.Writer) (res *Result, err error) {
	logf := func(format string, a ...any) { fmt.Fprintf(progress, "bench: "+format+"\n", a...) }
	if err := o.Check(); err != nil {
		return nil, err
	}
	if err := resolveBinaries(&o); err != nil {
		return nil, err
	}
	if o.PprofDir != "" {
		if o.PprofDir, err = checkPprofDir(o.PprofDir); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "crm-bench-")
	if err != nil {
		return nil, err
	}
	var procs []*proc
	var pg *pgServer
	dbName, dbURL, database := "", filepath.Join(dir, "crm.db"), "sqlite"
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop(25 * time.Second)
		}
		if dbName != "" && o.Keep {
			fmt.Fprintf(progress, "bench: database %s kept; drop it with: %s\n", dbName, pg.dropCommand(dbName))
		} else if dbName != "" {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if derr := pg.drop(ctx, dbName); derr != nil {
				fmt.Fprintf(progress, "bench: could not drop the database %s: %v\n", dbName, derr)
			}
		}
		if err != nil {
			for _, p := range procs {
				fmt.Fprintf(progress, "--- %s log (tail) ---\n%s\n", p.name, p.tail())
			}
		}
		if o.Keep || err != nil {
			what := "logs and database"
			if dbName != "" {
				what = "logs"
			}
			fmt.Fprintf(progress, "bench: %s kept in %s\n", what, dir)
		} else {
			os.RemoveAll(dir)
		}
	}()

	// Simulators.
	simArgs := []string{"--profile", o.HostProfile, "--host-latency", o.HostLatency.String(), "--upstream-latency", o.UpstreamLatency.String(),
		"--warmup", o.Warmup.String(), "--fault-rate", strconv.FormatFloat(o.FaultRate, 'f', -1, 64),
		"--keys", strconv.Itoa(o.Items), "--key-prefix", "sk-bench-"}
	simCmd := exec.Command(o.SimBin, simArgs...)
	simOut, err := simCmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	simLog, err := os.Create(filepath.Join(dir, "crmsim.log"))
	if err != nil {
		return nil, err
	}
	simCmd.Stderr = simLog
	if err := simCmd.Start(); err != nil {
		simLog.Close()
		return nil, fmt.Errorf("start crmsim: %w", err)
	}
	simProc := &proc{name: "crmsim", cmd: simCmd, log: simLog.Name(), done: make(chan struct{})}
	procs = append(procs, simProc)
	line, err := bufio.NewReader(simOut).ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("crmsim printed no JSON line: %w", err)
	}
	go func() { _, _ = io.Copy(io.Discard, simOut); _ = simCmd.Wait(); simLog.Close(); close(simProc.done) }()
	var sim simInfo
	if err := json.Unmarshal([]byte(line), &sim); err != nil {
		return nil, fmt.Errorf("crmsim: %w", err)
	}
	baseURL, ok := sim.BaseURLs[o.Provider]
	if !ok {
		return nil, fmt.Errorf("crmsim has no simulated provider %q", o.Provider)
	}

	// Redis.
	redisAddr, err := freePort()
	if err != nil {
		return nil, err
	}
	_, redisPort, _ := net.SplitHostPort(redisAddr)
	rp, err := startProc(dir, "redis", o.RedisBin, nil, "--port", redisPort, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err != nil {
		return nil, err
	}
	procs = append(procs, rp)
	if err := waitTCP(ctx, redisAddr, 10*time.Second); err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}

	// The database: a temporary SQLite file, or a fresh PostgreSQL database.
	if o.DatabaseURL != "" {
		if pg, err = newPGServer(o.DatabaseURL, o.PsqlBin); err != nil {
			return nil, err
		}
		if dbName, err = pg.create(ctx); err != nil {
			dbName = ""
			return nil, fmt.Errorf("create the bench database: %w", err)
		}
		dbURL, database = pg.dbURL(dbName), "postgres"
		logf("running on a fresh PostgreSQL database %s (%s)", dbName, redact(dbURL))
	}

	// api + workers, split mode.
	listen, err := freePort()
	if err != nil {
		return nil, err
	}
	token := "bench-token-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	env := []string{
		"CRM_LISTEN_ADDR=" + listen, "CRM_DATA_DIR=" + dir, "CRM_DATABASE_URL=" + dbURL,
		"CRM_REDIS_ADDR=" + redisAddr, "CRM_API_TOKEN=" + token, "CRM_MASTER_KEY=bench-master-key-0123456789abcdef",
		"CRM_WORKER_CONCURRENCY=" + strconv.Itoa(o.Concurrency),
		"CRM_HOST_CONCURRENCY=" + strconv.Itoa(o.HostCap), "CRM_UPSTREAM_CONCURRENCY=" + strconv.Itoa(o.UpstreamCap), "CRM_WINDOW_DEADLINE=" + o.WindowDeadline.String(),
		"CRM_WINDOW_SCHEDULE=" + o.WindowSchedule, "CRM_SWEEP_INTERVAL=30s", "CRM_ALLOW_PRIVATE_UPSTREAMS=true",
	}
	// With --pprof each process serves /debug/pprof on a loopback port of its own.
	var targets []profTarget
	procEnv := func(name string) ([]string, error) {
		if o.PprofDir == "" {
			return env, nil
		}
		addr, err := freePort()
		if err != nil {
			return nil, err
		}
		targets = append(targets, profTarget{name: name, addr: addr})
		return append(env[:len(env):len(env)], "CRM_PPROF_ADDR="+addr), nil
	}
	apiEnv, err := procEnv("api")
	if err != nil {
		return nil, err
	}
	api, err := startProc(dir, "api", o.APIBin, apiEnv)
	if err != nil {
		return nil, err
	}
	procs = append(procs, api)
	cl := apiclient.New("http://"+listen, token)
	if err := waitReady(ctx, cl, api); err != nil {
		return nil, err
	}
	workers := make([]*proc, o.Workers)
	for i := range workers {
		name := "worker"
		if o.Workers > 1 {
			name = fmt.Sprintf("worker-%d", i+1)
		}
		wenv, err := procEnv(name)
		if err != nil {
			return nil, err
		}
		if workers[i], err = startProc(dir, name, o.WorkerBin, wenv); err != nil {
			return nil, err
		}
		procs = append(procs, workers[i])
	}
	workersAlive := func() bool {
		for _, w := range workers {
			if !w.alive() {
				return false
			}
		}
		return true
	}

	var host struct {
		ID string `json:"id"`
	}
	if _, err := cl.Do(ctx, "POST", "/api/v1/hosts", nil, map[string]any{"name": "bench-host", "admin_url": sim.HostURL, "admin_api_key": sim.AdminKey}, &host); err != nil {
		return nil, fmt.Errorf("register host: %w", err)
	}
	time.Sleep(500 * time.Millisecond) // let the workers settle (first sweep)
	if !workersAlive() {
		return nil, errors.New("a worker exited at start")
	}

	items := make([]map[string]any, o.Items)
	for i := range items {
		items[i] = map[string]any{"name": fmt.Sprintf("bench %d", i), "base_url": baseURL, "api_key": fmt.Sprintf("%s%06d", sim.KeyPrefix, i),
			"provider": o.Provider}
	}
	sched, _ := parseScheduleSeconds(o.WindowSchedule)
	body := map[string]any{"host_id": host.ID, "name": "bench", "mode": o.Mode, "items": items,
		"window": map[string]any{"deadline_s": o.WindowDeadline.Seconds(), "schedule_s": sched}}
	rawBody, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}

	for _, t := range targets {
		if err := waitTCP(ctx, t.addr, 10*time.Second); err != nil {
			return nil, fmt.Errorf("%s pprof listener: %w", t.name, err)
		}
	}

	loadStart := loadAvg()
	apiCPU0, _ := procCPU(api.cmd.Process.Pid)
	workerCPU0 := make([]time.Duration, len(workers))
	for i, w := range workers {
		workerCPU0[i], _ = procCPU(w.cmd.Process.Pid)
	}
	redisCPU0, _ := procCPU(rp.cmd.Process.Pid)
	logf("submitting %d items (mode %s, %d worker(s) × concurrency %d, host latency %s, upstream latency %s, warm-up %s, fault rate %g)",
		o.Items, o.Mode, o.Workers, o.Concurrency, o.HostLatency, o.UpstreamLatency, o.Warmup, o.FaultRate)
	var prof *cpuProfiler
	if o.PprofDir != "" {
		window := o.pprofWindow
		if window == 0 {
			window = defaultPprofWindow
		}
		prof = startCPUProfiles(ctx, o.PprofDir, window, targets)
		defer prof.Stop() // on an early return; a no-op after the Stop below
	}
	started := time.Now()
	var sub struct {
		Batch struct {
			ID string `json:"id"`
		} `json:"batch"`
	}
	if _, err := cl.Do(ctx, "POST", "/api/v1/batches", nil, json.RawMessage(rawBody), &sub); err != nil {
		return nil, fmt.Errorf("submit: %w", err)
	}
	var final batchState
	last, lastLog := "", time.Now()
	err = apiclient.Poll(ctx, time.Second, o.Timeout, func(ctx context.Context) (bool, error) {
		var bv batchState
		if _, err := cl.GetBatch(ctx, sub.Batch.ID, &bv); err != nil {
			return false, err
		}
		if p := fmt.Sprintf("%d/%d done", bv.done(), o.Items); p != last && time.Since(lastLog) > 5*time.Second {
			last, lastLog = p, time.Now()
			logf("%s after %.0fs", p, time.Since(started).Seconds())
		}
		if !apiclient.Running(bv.Status) {
			final = bv
			return true, nil
		}
		if !workersAlive() || !api.alive() {
			return false, errors.New("a control-plane process exited during the run")
		}
		return false, nil
	})
	if errors.Is(err, apiclient.ErrTimeout) {
		return nil, fmt.Errorf("batch not done after %s (%s)", o.Timeout, last)
	} else if err != nil {
		return nil, err
	}
	// Poll once a second (each GET costs the API a count over the batch's items) and take
	// the end from the batch's finished_at, so the polling interval does not add to wall.
	wall := time.Since(started)
	if final.FinishedAt != nil && final.FinishedAt.After(started) && final.FinishedAt.Before(time.Now()) {
		wall = final.FinishedAt.Sub(started)
	}
	apiCPU1, _ := procCPU(api.cmd.Process.Pid)
	var workerCPU time.Duration
	perWorker := make([]ProcStats, len(workers))
	for i, w := range workers {
		c, _ := procCPU(w.cmd.Process.Pid)
		workerCPU += c - workerCPU0[i]
		perWorker[i] = ProcStats{Name: w.name, CPUMs: ms(c - workerCPU0[i])}
	}
	redisCPU1, _ := procCPU(rp.cmd.Process.Pid)
	logf("batch %s: %s in %.1fs", sub.Batch.ID, final.Status, wall.Seconds())
	var profFiles []string
	if prof != nil {
		logf("letting the last CPU profile window finish; saving heap profiles")
		files, perr := prof.Stop()
		if perr != nil {
			logf("warning: %v", perr)
		}
		for _, t := range targets {
			f, herr := heapProfile(ctx, o.PprofDir, t)
			if herr != nil {
				logf("warning: %v", herr)
				continue
			}
			files = append(files, f)
		}
		profFiles = files
	}

	r := &Result{Items: o.Items, WallS: wall.Seconds(), ItemsPerS: float64(o.Items) / wall.Seconds(),
		APICPUMs: ms(apiCPU1 - apiCPU0), WorkerCPUMs: ms(workerCPU), WorkerProcs: perWorker, RedisCPUMs: ms(redisCPU1 - redisCPU0),
		Status: final.Status, Counts: final.Counts,
		Config: Config{Items: o.Items, Mode: o.Mode, Concurrency: o.Concurrency, Workers: o.Workers, HostCap: o.HostCap, UpstreamCap: o.UpstreamCap, Database: database, HostLatencyMS: ms(o.HostLatency), UpstreamLatMS: ms(o.UpstreamLatency),
			WarmupS: o.Warmup.Seconds(), FaultRate: o.FaultRate, Profile: o.HostProfile, Provider: o.Provider, WindowSchedule: o.WindowSchedule,
			WindowDeadlineS: o.WindowDeadline.Seconds()},
		Machine: machine()}
	r.Machine.LoadStart, r.Machine.LoadEnd = loadStart, loadAvg()
	if o.PprofDir != "" {
		r.PprofDir, r.PprofFiles = o.PprofDir, profFiles
		r.PprofCommands = []string{
			"go tool pprof -top " + o.WorkerBin + " " + filepath.Join(o.PprofDir, "worker*-cpu-*.pb.gz"),
			"go tool pprof -top " + o.APIBin + " " + filepath.Join(o.PprofDir, "api-cpu-*.pb.gz"),
			"go tool pprof -top -sample_index=alloc_space " + o.WorkerBin + " " + filepath.Join(o.PprofDir, "worker*-heap.pb.gz"),
		}
	}
	r.CPUMsPerItem = (r.APICPUMs + r.WorkerCPUMs) / float64(o.Items)
	if raw, err := httpGetRaw(ctx, sim.StatsURL); err == nil {
		r.Sim = raw
	}

	// The bound, from the evidence of a sample of items.
	b, err := deriveBound(ctx, cl, sub.Batch.ID, o)
	if err != nil {
		return nil, fmt.Errorf("derive the bound: %w", err)
	}
	r.Bound = b
	r.BoundS = math.Max(math.Max(b.CapacityTermS, b.LatencyTermS), b.CapTermS)
	r.Efficiency = r.BoundS / r.WallS
	for i, w := range workers {
		r.WorkerProcs[i].PeakRSSMB = procHWM(w.cmd.Process.Pid)
		r.WorkerPeakRSSMB = math.Max(r.WorkerPeakRSSMB, r.WorkerProcs[i].PeakRSSMB)
	}
	stopAll(workers, 25*time.Second)

	// 10 000-item submit and the batch-detail latency, workers stopped.
	if o.SubmitItems > 0 {
		big := make([]map[string]any, o.SubmitItems)
		for i := range big {
			big[i] = map[string]any{"name": fmt.Sprintf("big %d", i), "base_url": baseURL, "api_key": fmt.Sprintf("sk-bench-big-%06d", i), "provider": o.Provider}
		}
		raw, err := json.Marshal(map[string]any{"host_id": host.ID, "name": "bench-10k", "mode": "none", "dry_run": true, "items": big})
		if err != nil {
			return nil, err
		}
		logf("submitting a %d-item batch (mode none, dry run; workers stopped)", o.SubmitItems)
		t0 := time.Now()
		var bigSub struct {
			Batch struct {
				ID string `json:"id"`
			} `json:"batch"`
		}
		if _, err := cl.Do(ctx, "POST", "/api/v1/batches", nil, json.RawMessage(raw), &bigSub); err != nil {
			return nil, fmt.Errorf("submit %d items: %w", o.SubmitItems, err)
		}
		r.SubmitItems, r.SubmitS = o.SubmitItems, time.Since(t0).Seconds()
		logf("accepted in %.3fs; measuring batch detail latency", r.SubmitS)
		var all, bl, il []float64
		pages := (o.SubmitItems + 99) / 100
		for i := 0; i < o.DetailRequests; i++ {
			t := time.Now()
			if _, err := cl.Do(ctx, "GET", "/api/v1/batches/"+bigSub.Batch.ID, nil, nil, nil); err != nil {
				return nil, err
			}
			d := ms(time.Since(t))
			bl, all = append(bl, d), append(all, d)
			q := url.Values{"page_size": {"100"}, "page": {strconv.Itoa(i%pages + 1)}}
			t = time.Now()
			if _, err := cl.Do(ctx, "GET", "/api/v1/batches/"+bigSub.Batch.ID+"/items", q, nil, nil); err != nil {
				return nil, err
			}
			d = ms(time.Since(t))
			il, all = append(il, d), append(all, d)
		}
		r.DetailSamples = len(all)
		r.DetailP50Ms, r.DetailP99Ms = pct(all, 50), pct(all, 99)
		r.BatchP50Ms, r.BatchP99Ms = pct(bl, 50), pct(bl, 99)
		r.ItemsP50Ms, r.ItemsP99Ms = pct(il, 50), pct(il, 99)
	}
	r.APIPeakRSSMB = procHWM(api.cmd.Process.Pid)
	r.PeakRSSMB = math.Max(r.APIPeakRSSMB, r.WorkerPeakRSSMB)
	return r, nil
}

func waitReady(ctx context.Context, cl *apiclient.Client, api *proc) error {
	err := apiclient.Poll(ctx, 100*time.Millisecond, 60*time.Second, func(ctx context.Context) (bool, error) {
		if cl.Ready(ctx) == nil {
			return true, nil
		}
		if !api.alive() {
			return false, errors.New("the api exited at start")
		}
		return false, nil
	})
	if errors.Is(err, apiclient.ErrTimeout) {
		return errors.New("the api did not become ready within 60s")
	}
	return err
}

func httpGetRaw(ctx context.Context, u string) (json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return json.RawMessage(bytes.TrimSpace(b)), err
}
