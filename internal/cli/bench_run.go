package cli

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
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/apiclient"
)

// benchProc is one started child process.
type benchProc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startProc(dir, name, bin string, env []string, args ...string) (*benchProc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &benchProc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	return p, nil
}

func (p *benchProc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and escalates to SIGKILL after grace.
func (p *benchProc) stop(grace time.Duration) {
	if p == nil || !p.alive() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *benchProc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// procCPU returns utime+stime of pid from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc stat format")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc stat format")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("unexpected /proc stat format")
	}
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clkTck, nil
}

// procHWM returns VmHWM (peak RSS) of pid in MB.
func procHWM(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseFloat(f[0], 64)
				return kb / 1024
			}
		}
	}
	return 0
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitTCP(ctx context.Context, addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not accept connections within %s", addr, d)
}

type simInfo struct {
	HostURL   string            `json:"host_url"`
	StatsURL  string            `json:"stats_url"`
	AdminKey  string            `json:"admin_key"`
	KeyPrefix string            `json:"key_prefix"`
	BaseURLs  map[string]string `json:"base_urls"`
}

func runBench(ctx context.Context, o benchOpts, progress io.Writer) (res *benchResult, err error) {
	logf := func(format string, a ...any) { fmt.Fprintf(progress, "bench: "+format+"\n", a...) }
	dir, err := os.MkdirTemp("", "crm-bench-")
	if err != nil {
		return nil, err
	}
	var procs []*benchProc
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop(25 * time.Second)
		}
		if err != nil {
			for _, p := range procs {
				fmt.Fprintf(progress, "--- %s log (tail) ---\n%s\n", p.name, p.tail())
			}
		}
		if o.keep || err != nil {
			fmt.Fprintf(progress, "bench: logs and database kept in %s\n", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()

	// Simulators.
	simArgs := []string{"--profile", o.profile, "--host-latency", o.hostLat.String(), "--upstream-latency", o.upLat.String(),
		"--warmup", o.warmup.String(), "--fault-rate", strconv.FormatFloat(o.faultRate, 'f', -1, 64),
		"--keys", strconv.Itoa(o.items), "--key-prefix", "sk-bench-"}
	simCmd := exec.Command(o.simBin, simArgs...)
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
	simProc := &benchProc{name: "crmsim", cmd: simCmd, log: simLog.Name(), done: make(chan struct{})}
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
	baseURL, ok := sim.BaseURLs[o.provider]
	if !ok {
		return nil, fmt.Errorf("crmsim has no simulated provider %q", o.provider)
	}

	// Redis.
	redisAddr, err := freePort()
	if err != nil {
		return nil, err
	}
	_, redisPort, _ := net.SplitHostPort(redisAddr)
	rp, err := startProc(dir, "redis", o.redisBin, nil, "--port", redisPort, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err != nil {
		return nil, err
	}
	procs = append(procs, rp)
	if err := waitTCP(ctx, redisAddr, 10*time.Second); err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}

	// api + worker, split mode.
	listen, err := freePort()
	if err != nil {
		return nil, err
	}
	token := "bench-token-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	env := []string{
		"CRM_LISTEN_ADDR=" + listen, "CRM_DATA_DIR=" + dir, "CRM_DATABASE_URL=" + filepath.Join(dir, "crm.db"),
		"CRM_REDIS_ADDR=" + redisAddr, "CRM_API_TOKEN=" + token, "CRM_MASTER_KEY=bench-master-key-0123456789abcdef",
		"CRM_WORKER_CONCURRENCY=" + strconv.Itoa(o.concurrency), "CRM_WINDOW_DEADLINE=" + o.deadline.String(),
		"CRM_WINDOW_SCHEDULE=" + o.schedule, "CRM_SWEEP_INTERVAL=30s", "CRM_ALLOW_PRIVATE_UPSTREAMS=true",
	}
	api, err := startProc(dir, "api", o.apiBin, env)
	if err != nil {
		return nil, err
	}
	procs = append(procs, api)
	cl := apiclient.New("http://"+listen, token)
	if err := benchWaitReady(ctx, cl, api); err != nil {
		return nil, err
	}
	worker, err := startProc(dir, "worker", o.workerBin, env)
	if err != nil {
		return nil, err
	}
	procs = append(procs, worker)

	var host struct {
		ID string `json:"id"`
	}
	if _, err := cl.Do(ctx, "POST", "/api/v1/hosts", nil, map[string]any{"name": "bench-host", "admin_url": sim.HostURL, "admin_api_key": sim.AdminKey}, &host); err != nil {
		return nil, fmt.Errorf("register host: %w", err)
	}
	time.Sleep(500 * time.Millisecond) // let the worker settle (first sweep)
	if !worker.alive() {
		return nil, errors.New("the worker exited at start")
	}

	items := make([]map[string]any, o.items)
	for i := range items {
		items[i] = map[string]any{"name": fmt.Sprintf("bench %d", i), "base_url": baseURL, "api_key": fmt.Sprintf("%s%06d", sim.KeyPrefix, i),
			"provider": o.provider}
	}
	sched, _ := parseScheduleSeconds(o.schedule)
	body := map[string]any{"host_id": host.ID, "name": "bench", "mode": o.mode, "items": items,
		"window": map[string]any{"deadline_s": o.deadline.Seconds(), "schedule_s": sched}}
	rawBody, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}

	loadStart := loadAvg()
	apiCPU0, _ := procCPU(api.cmd.Process.Pid)
	workerCPU0, _ := procCPU(worker.cmd.Process.Pid)
	redisCPU0, _ := procCPU(rp.cmd.Process.Pid)
	logf("submitting %d items (mode %s, concurrency %d, host latency %s, upstream latency %s, warm-up %s, fault rate %g)",
		o.items, o.mode, o.concurrency, o.hostLat, o.upLat, o.warmup, o.faultRate)
	started := time.Now()
	var sub struct {
		Batch struct {
			ID string `json:"id"`
		} `json:"batch"`
	}
	if _, err := cl.Do(ctx, "POST", "/api/v1/batches", nil, json.RawMessage(rawBody), &sub); err != nil {
		return nil, fmt.Errorf("submit: %w", err)
	}
	var final batchView
	last, lastLog := "", time.Now()
	err = apiclient.Poll(ctx, time.Second, o.timeout, func(ctx context.Context) (bool, error) {
		var bv batchView
		if _, err := cl.GetBatch(ctx, sub.Batch.ID, &bv); err != nil {
			return false, err
		}
		if p := fmt.Sprintf("%d/%d done", doneCount(bv.Counts), o.items); p != last && time.Since(lastLog) > 5*time.Second {
			last, lastLog = p, time.Now()
			logf("%s after %.0fs", p, time.Since(started).Seconds())
		}
		if !apiclient.Running(bv.Status) {
			final = bv
			return true, nil
		}
		if !worker.alive() || !api.alive() {
			return false, errors.New("a control-plane process exited during the run")
		}
		return false, nil
	})
	if errors.Is(err, apiclient.ErrTimeout) {
		return nil, fmt.Errorf("batch not done after %s (%s)", o.timeout, last)
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
	workerCPU1, _ := procCPU(worker.cmd.Process.Pid)
	redisCPU1, _ := procCPU(rp.cmd.Process.Pid)
	logf("batch %s: %s in %.1fs", sub.Batch.ID, final.Status, wall.Seconds())

	r := &benchResult{Items: o.items, WallS: wall.Seconds(), ItemsPerS: float64(o.items) / wall.Seconds(),
		APICPUMs: ms(apiCPU1 - apiCPU0), WorkerCPUMs: ms(workerCPU1 - workerCPU0), RedisCPUMs: ms(redisCPU1 - redisCPU0),
		Status: final.Status, Counts: final.Counts,
		Config: benchConfig{Items: o.items, Mode: o.mode, Concurrency: o.concurrency, HostLatencyMS: ms(o.hostLat), UpstreamLatMS: ms(o.upLat),
			WarmupS: o.warmup.Seconds(), FaultRate: o.faultRate, Profile: o.profile, Provider: o.provider, WindowSchedule: o.schedule,
			WindowDeadlineS: o.deadline.Seconds()},
		Machine: machine()}
	r.Machine.LoadStart, r.Machine.LoadEnd = loadStart, loadAvg()
	r.CPUMsPerItem = (r.APICPUMs + r.WorkerCPUMs) / float64(o.items)
	if raw, err := httpGetRaw(ctx, sim.StatsURL); err == nil {
		r.Sim = raw
	}

	// The bound, from the evidence of a sample of items.
	b, err := benchDeriveBound(ctx, cl, sub.Batch.ID, o)
	if err != nil {
		return nil, fmt.Errorf("derive the bound: %w", err)
	}
	r.Bound = b
	r.BoundS = math.Max(b.CapacityTermS, b.LatencyTermS)
	r.Efficiency = r.BoundS / r.WallS
	r.WorkerPeakRSSMB = procHWM(worker.cmd.Process.Pid)
	worker.stop(25 * time.Second)

	// 10 000-item submit and the batch-detail latency, worker stopped.
	if o.submitItems > 0 {
		big := make([]map[string]any, o.submitItems)
		for i := range big {
			big[i] = map[string]any{"name": fmt.Sprintf("big %d", i), "base_url": baseURL, "api_key": fmt.Sprintf("sk-bench-big-%06d", i), "provider": o.provider}
		}
		raw, err := json.Marshal(map[string]any{"host_id": host.ID, "name": "bench-10k", "mode": "none", "dry_run": true, "items": big})
		if err != nil {
			return nil, err
		}
		logf("submitting a %d-item batch (mode none, dry run; worker stopped)", o.submitItems)
		t0 := time.Now()
		var bigSub struct {
			Batch struct {
				ID string `json:"id"`
			} `json:"batch"`
		}
		if _, err := cl.Do(ctx, "POST", "/api/v1/batches", nil, json.RawMessage(raw), &bigSub); err != nil {
			return nil, fmt.Errorf("submit %d items: %w", o.submitItems, err)
		}
		r.SubmitItems, r.SubmitS = o.submitItems, time.Since(t0).Seconds()
		logf("accepted in %.3fs; measuring batch detail latency", r.SubmitS)
		var all, bl, il []float64
		pages := (o.submitItems + 99) / 100
		for i := 0; i < o.detailReqs; i++ {
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

func benchWaitReady(ctx context.Context, cl *apiclient.Client, api *benchProc) error {
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

type benchAttempt struct {
	Outcome  string `json:"outcome"`
	Evidence []struct {
		Target string `json:"target"`
		Method string `json:"method"`
		Path   string `json:"path"`
		Status int    `json:"status"`
	} `json:"evidence"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
}

// benchDeriveBound reads the attempts of a sample of items and computes the bound.
func benchDeriveBound(ctx context.Context, cl *apiclient.Client, batchID string, o benchOpts) (benchBound, error) {
	var ids []string
	for page := 1; len(ids) < o.items; page++ {
		var p struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
		}
		q := url.Values{"page_size": {"1000"}, "page": {strconv.Itoa(page)}}
		if _, err := cl.Do(ctx, "GET", "/api/v1/batches/"+batchID+"/items", q, nil, &p); err != nil {
			return benchBound{}, err
		}
		if len(p.Items) == 0 {
			break
		}
		for _, it := range p.Items {
			ids = append(ids, it.ID)
		}
	}
	k := min(o.sample, len(ids))
	if k < 1 {
		return benchBound{}, errors.New("the batch has no items")
	}
	lh, lu := o.hostLat.Seconds(), o.upLat.Seconds()
	const backoff = 0.2 // the host client's first retry delay (at least)
	var b benchBound
	var pre, post, hostCalls, upCalls, nested, faults, waits, measured, waited float64
	waitedN := 0
	for j := 0; j < k; j++ {
		id := ids[j*len(ids)/k]
		var d struct {
			Attempts []benchAttempt `json:"attempts"`
		}
		if _, err := cl.Do(ctx, "GET", "/api/v1/batches/"+batchID+"/items/"+id, nil, nil, &d); err != nil {
			return b, err
		}
		sort.SliceStable(d.Attempts, func(a, c int) bool { return d.Attempts[a].StartedAt.Before(d.Attempts[c].StartedAt) })
		firstWait, lastWait := -1, -1
		for i, a := range d.Attempts {
			if a.Outcome == "waiting" {
				if firstWait < 0 {
					firstWait = i
				}
				lastWait = i
			}
		}
		for i, a := range d.Attempts {
			slot := 0.0
			for _, x := range a.Evidence {
				switch x.Target {
				case "upstream":
					slot += lu
					upCalls++
				default: // host, gateway
					slot += lh
					hostCalls++
					if x.Status == 200 && (strings.HasSuffix(x.Path, "/test") || strings.HasSuffix(x.Path, "/chat/completions")) {
						slot += lu
						nested++
					}
					if x.Target == "host" && (x.Status == 0 || x.Status == 500 || x.Status == 502 || x.Status == 503 || x.Status == 504) {
						slot += backoff
						faults++
					}
				}
			}
			measured += a.FinishedAt.Sub(a.StartedAt).Seconds()
			if a.Outcome == "waiting" {
				waits++
			}
			switch {
			case firstWait < 0 || i <= firstWait:
				pre += slot
			case i > lastWait:
				post += slot
			}
		}
		if firstWait >= 0 && len(d.Attempts) > 0 {
			waited += d.Attempts[len(d.Attempts)-1].FinishedAt.Sub(d.Attempts[firstWait].FinishedAt).Seconds()
			waitedN++
		}
	}
	n, c, kk := float64(o.items), float64(o.concurrency), float64(k)
	b.SampledItems = k
	b.HostCallsPerIt, b.UpCallsPerItem, b.NestedPerItem, b.FaultsPerItem = hostCalls/kk, upCalls/kk, nested/kk, faults/kk
	b.SlotPreS, b.SlotPostS, b.WaitsPerItem, b.MeasuredSlotS = pre/kk, post/kk, waits/kk, measured/kk
	s := b.SlotPreS + b.SlotPostS
	b.CapacityTermS = n * s / c
	if waitedN > 0 && o.warmup > 0 {
		b.WaitS, b.GranularityS = o.warmup.Seconds(), 1
		b.MeasuredWaitedS = waited / float64(waitedN)
		b.LatencyTermS = n*b.SlotPreS/c + b.WaitS + b.GranularityS + b.SlotPostS
		b.Formula = "max(N*S/C, N*S_pre/C + W + g + S_post)"
	} else {
		b.LatencyTermS = s
		b.Formula = "max(N*S/C, S)"
	}
	return b, nil
}

func parseScheduleSeconds(s string) ([]float64, error) {
	var out []float64
	for _, p := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(p))
		if err != nil {
			return nil, err
		}
		out = append(out, math.Max(1, d.Seconds()))
	}
	return out, nil
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
