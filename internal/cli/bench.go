package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// benchHelp follows the flags in `crmctl bench -h`.
const benchHelp = `Runs a load benchmark on built binaries. Build them first:

  CGO_ENABLED=0 go build -o bin/ ./cmd/api ./cmd/worker ./cmd/crmsim ./cmd/crmctl
  ./bin/crmctl bench --items 1000

It starts crmsim (simulated host + providers, own process, the configured latencies,
warm-up and fault rate), a private redis-server (from PATH, no persistence) and the api
and worker processes in split mode on SQLite in a temporary directory; registers the
host; submits N items and polls until the batch is done. It then prints items/s, the
wall time, the bound, efficiency = bound/wall, the control-plane CPU per item (utime +
stime of api + worker from /proc), their peak RSS (VmHWM), and — with the worker
stopped — the time the API takes to accept a 10 000-item batch (mode none, dry_run)
and p50/p99 of GET /api/v1/batches/{id} and /items?page_size=100 on that batch.

The bound is the wall time an ideal scheduler would need given the configured
latencies. The per-item call sequence is read from the evidence the product stores
with every attempt (a sample of --sample items): every host or gateway call costs the
host latency Lh, every direct upstream call the upstream latency Lu, a host call that
itself calls the upstream (account test, gateway chat) another Lu, and a host call
answered 5xx/no answer (a fault, retried by the client) at least 200 ms of back-off.
S_pre is that slot time up to and including the first attempt that waited for the
warm-up, S_post the slot time after the last wait, S = S_pre + S_post (re-checks that
ran before the warm-up was over are not part of the ideal). With N items, worker
concurrency C, warm-up W and asynq's scheduling granularity g = 1 s (scheduled tasks
are stored in whole seconds and forwarded every second):

  bound = max(N·S/C, N·S_pre/C + W + g + S_post)     when items wait for a warm-up
  bound = max(N·S/C, S)                              otherwise

The first term is the slot time the work needs with C slots; the second is the last
item to finish its pre-wait work (no earlier than N·S_pre/C) waiting W and finishing.
The warm-up only shows on the gateway, so it applies to mode self_service, not none.`

// benchConfig is what a bench run was configured with.
type benchConfig struct {
	Items           int     `json:"items"`
	Mode            string  `json:"mode"`
	Concurrency     int     `json:"concurrency"`
	HostLatencyMS   float64 `json:"host_latency_ms"`
	UpstreamLatMS   float64 `json:"upstream_latency_ms"`
	WarmupS         float64 `json:"warmup_s"`
	FaultRate       float64 `json:"fault_rate"`
	Profile         string  `json:"host_profile"`
	Provider        string  `json:"provider"`
	WindowSchedule  string  `json:"window_schedule"`
	WindowDeadlineS float64 `json:"window_deadline_s"`
}

// benchResult is the JSON object `crmctl bench --json` prints.
type benchResult struct {
	Items        int     `json:"items"`
	WallS        float64 `json:"wall_s"`
	BoundS       float64 `json:"bound_s"`
	Efficiency   float64 `json:"efficiency"`
	ItemsPerS    float64 `json:"items_per_s"`
	CPUMsPerItem float64 `json:"cpu_ms_per_item"`
	PeakRSSMB    float64 `json:"peak_rss_mb"`

	APICPUMs        float64        `json:"api_cpu_ms"`
	WorkerCPUMs     float64        `json:"worker_cpu_ms"`
	RedisCPUMs      float64        `json:"redis_cpu_ms"`
	APIPeakRSSMB    float64        `json:"api_peak_rss_mb"`
	WorkerPeakRSSMB float64        `json:"worker_peak_rss_mb"`
	Status          string         `json:"status"`
	Counts          map[string]int `json:"counts"`

	Bound benchBound      `json:"bound"`
	Sim   json.RawMessage `json:"simulator_requests,omitempty"`

	SubmitItems   int     `json:"submit_items,omitempty"`
	SubmitS       float64 `json:"submit_s,omitempty"`
	DetailP50Ms   float64 `json:"detail_p50_ms,omitempty"`
	DetailP99Ms   float64 `json:"detail_p99_ms,omitempty"`
	BatchP50Ms    float64 `json:"batch_get_p50_ms,omitempty"`
	BatchP99Ms    float64 `json:"batch_get_p99_ms,omitempty"`
	ItemsP50Ms    float64 `json:"items_page_p50_ms,omitempty"`
	ItemsP99Ms    float64 `json:"items_page_p99_ms,omitempty"`
	DetailSamples int     `json:"detail_requests,omitempty"`

	Config  benchConfig `json:"config"`
	Machine benchHost   `json:"machine"`
}

// benchBound explains how bound_s was computed.
type benchBound struct {
	Formula         string  `json:"formula"`
	SampledItems    int     `json:"sampled_items"`
	HostCallsPerIt  float64 `json:"host_calls_per_item"`
	UpCallsPerItem  float64 `json:"upstream_calls_per_item"`
	NestedPerItem   float64 `json:"nested_upstream_calls_per_item"`
	FaultsPerItem   float64 `json:"faults_per_item"`
	SlotPreS        float64 `json:"slot_pre_s"`
	SlotPostS       float64 `json:"slot_post_s"`
	WaitS           float64 `json:"wait_s"`
	GranularityS    float64 `json:"granularity_s"`
	CapacityTermS   float64 `json:"capacity_term_s"`
	LatencyTermS    float64 `json:"latency_term_s"`
	WaitsPerItem    float64 `json:"waits_per_item"`
	MeasuredSlotS   float64 `json:"measured_slot_s_per_item"`
	MeasuredWaitedS float64 `json:"measured_first_wait_to_done_s"`
}

type benchHost struct {
	CPUs      int    `json:"cpus"`
	LoadStart string `json:"loadavg_start"`
	LoadEnd   string `json:"loadavg_end"`
	MemTotal  string `json:"mem_total"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
}

type benchOpts struct {
	items, concurrency, sample, submitItems, detailReqs                    int
	mode, profile, provider, apiBin, workerBin, simBin, redisBin, schedule string
	hostLat, upLat, warmup, deadline, timeout                              time.Duration
	faultRate                                                              float64
	keep, jsonOut                                                          bool
}

func (e *env) bench(fs *flag.FlagSet) func(pos []string) error {
	var o benchOpts
	fs.IntVar(&o.items, "items", 200, "number of items to submit")
	fs.StringVar(&o.mode, "mode", "self_service", "access mode of the batch: self_service or none")
	fs.IntVar(&o.concurrency, "concurrency", 10, "worker concurrency (CRM_WORKER_CONCURRENCY)")
	fs.DurationVar(&o.hostLat, "host-latency", 20*time.Millisecond, "latency of every simulated host request")
	fs.DurationVar(&o.upLat, "upstream-latency", 50*time.Millisecond, "latency of every simulated upstream answer")
	fs.DurationVar(&o.warmup, "warmup", 0, "gateway warm-up of every account, from its first gateway use (mode self_service)")
	fs.Float64Var(&o.faultRate, "fault-rate", 0, "fraction of host admin requests answered 500")
	fs.StringVar(&o.profile, "host-profile", "0.1.179", "simulated host profile")
	fs.StringVar(&o.provider, "provider", "deepseek", "simulated provider of every item")
	fs.StringVar(&o.schedule, "window-schedule", "", "confirmation re-check delays (default: warm-up+1s,1s)")
	fs.DurationVar(&o.deadline, "window-deadline", 30*time.Minute, "confirmation window length")
	fs.IntVar(&o.sample, "sample", 40, "items whose attempts are read to derive the per-item call sequence")
	fs.IntVar(&o.submitItems, "submit-items", 10000, "size of the batch whose submit time and detail latency are measured (0 skips)")
	fs.IntVar(&o.detailReqs, "detail-requests", 300, "requests per endpoint for the batch-detail percentiles")
	fs.StringVar(&o.apiBin, "api-bin", "./bin/api", "api binary")
	fs.StringVar(&o.workerBin, "worker-bin", "./bin/worker", "worker binary")
	fs.StringVar(&o.simBin, "crmsim-bin", "./bin/crmsim", "crmsim binary")
	fs.StringVar(&o.redisBin, "redis-server", "", "redis-server binary (default: from PATH)")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Minute, "give up when the batch is not done by then")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (logs, database)")
	fs.BoolVar(&o.jsonOut, "json", false, "print one JSON object")
	return func(pos []string) error {
		if len(pos) > 0 {
			return usagef("bench takes no arguments")
		}
		if e.json() {
			o.jsonOut = true
		}
		if o.items < 1 || o.items > 10000 {
			return usagef("--items must be between 1 and 10000")
		}
		if o.mode != "self_service" && o.mode != "none" && o.mode != "subscription" {
			return usagef("--mode must be self_service, subscription or none")
		}
		if o.concurrency < 1 || o.faultRate < 0 || o.faultRate >= 1 || o.submitItems < 0 || o.submitItems > 10000 {
			return usagef("bad --concurrency, --fault-rate or --submit-items")
		}
		if o.schedule == "" {
			o.schedule = "1s"
			if o.warmup > 0 {
				o.schedule = fmt.Sprintf("%ds,1s", int(math.Ceil(o.warmup.Seconds()))+1)
			}
		}
		for _, b := range []*string{&o.apiBin, &o.workerBin, &o.simBin} {
			if _, err := os.Stat(*b); err != nil {
				return fmt.Errorf("%s: %w\nhint: build the binaries first: CGO_ENABLED=0 go build -o bin/ ./cmd/api ./cmd/worker ./cmd/crmsim", *b, err)
			}
			if abs, err := filepath.Abs(*b); err == nil {
				*b = abs
			}
		}
		if o.redisBin == "" {
			var err error
			if o.redisBin, err = exec.LookPath("redis-server"); err != nil {
				return errors.New("redis-server is not on PATH (pass --redis-server)")
			}
		}
		r, err := runBench(e.ctx, o, e.stderr)
		if err != nil {
			return err
		}
		if o.jsonOut {
			enc := json.NewEncoder(e.stdout)
			enc.SetEscapeHTML(false)
			return enc.Encode(r)
		}
		printBench(e.stdout, r)
		return nil
	}
}

func printBench(w io.Writer, r *benchResult) {
	c := r.Config
	fmt.Fprintf(w, "crmctl bench: %d items, mode %s, worker concurrency %d, host latency %gms, upstream latency %gms, warm-up %gs, fault rate %g\n",
		r.Items, c.Mode, c.Concurrency, c.HostLatencyMS, c.UpstreamLatMS, c.WarmupS, c.FaultRate)
	fmt.Fprintf(w, "machine: %d CPUs, %s, %s, load average %s at the start, %s at the end\n", r.Machine.CPUs, r.Machine.MemTotal, r.Machine.GoVersion,
		r.Machine.LoadStart, r.Machine.LoadEnd)
	fmt.Fprintf(w, "batch: %s %v\n", r.Status, r.Counts)
	fmt.Fprintf(w, "throughput:        %.1f items/s\n", r.ItemsPerS)
	fmt.Fprintf(w, "wall time:         %.2f s\n", r.WallS)
	b := r.Bound
	fmt.Fprintf(w, "bound:             %.2f s = %s; per item: %.1f host/gateway calls, %.1f upstream calls (+%.1f through the host), %.2f faults;\n",
		r.BoundS, b.Formula, b.HostCallsPerIt, b.UpCallsPerItem, b.NestedPerItem, b.FaultsPerItem)
	fmt.Fprintf(w, "                   S_pre %.3f s, S_post %.3f s, W %.0f s, g %.0f s; capacity term %.2f s, latency term %.2f s (sample of %d items)\n",
		b.SlotPreS, b.SlotPostS, b.WaitS, b.GranularityS, b.CapacityTermS, b.LatencyTermS, b.SampledItems)
	fmt.Fprintf(w, "efficiency:        %.3f (bound/wall)\n", r.Efficiency)
	fmt.Fprintf(w, "cpu per item:      %.2f ms (api %.0f ms + worker %.0f ms; redis %.0f ms not counted)\n", r.CPUMsPerItem, r.APICPUMs, r.WorkerCPUMs, r.RedisCPUMs)
	fmt.Fprintf(w, "peak RSS:          api %.1f MB, worker %.1f MB\n", r.APIPeakRSSMB, r.WorkerPeakRSSMB)
	if r.SubmitItems > 0 {
		fmt.Fprintf(w, "submit %d items:  %.3f s (mode none, dry run, worker stopped)\n", r.SubmitItems, r.SubmitS)
		fmt.Fprintf(w, "batch detail:      p50 %.1f ms, p99 %.1f ms over %d requests (GET batch p50/p99 %.1f/%.1f ms, items page of 100 %.1f/%.1f ms)\n",
			r.DetailP50Ms, r.DetailP99Ms, r.DetailSamples, r.BatchP50Ms, r.BatchP99Ms, r.ItemsP50Ms, r.ItemsP99Ms)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pct is the nearest-rank percentile p of xs.
func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func machine() benchHost {
	h := benchHost{CPUs: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if out, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
		h.GoVersion = strings.TrimSpace(string(out))
	} else {
		h.GoVersion = runtime.Version() + " (crmctl)"
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				h.MemTotal = strings.TrimSpace(rest)
			}
		}
	}
	return h
}

// loadAvg is the first three fields of /proc/loadavg (the machine may be shared).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
