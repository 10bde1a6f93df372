// Package bench is the load benchmark behind `crmctl bench`: it starts crmsim, a private
// redis-server and the api and worker binaries, submits a batch, waits for it, and derives
// the ideal wall time (the bound) from the evidence the product stores with every attempt.
// internal/cli only parses the command's flags into Options, calls Run and prints the
// Result.
package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Options configures a run; the zero values of the flags are filled in by Check.
type Options struct {
	Items       int    // items of the measured batch (1…10000)
	Mode        string // access mode of the batch: self_service, subscription or none
	Concurrency int    // slots of each worker process (CRM_WORKER_CONCURRENCY)
	Workers     int    // worker processes (0 means 1)
	// HostCap and UpstreamCap are CRM_HOST_CONCURRENCY and CRM_UPSTREAM_CONCURRENCY of the
	// run (0 = unlimited): the bound counts them when they are tighter than the slots.
	HostCap, UpstreamCap int

	HostLatency     time.Duration // latency of every simulated host request
	UpstreamLatency time.Duration // latency of every simulated upstream answer
	Warmup          time.Duration // gateway warm-up of every account
	FaultRate       float64       // fraction of host admin requests answered 500
	HostProfile     string        // simulated host profile
	Provider        string        // simulated provider of every item

	WindowSchedule string        // confirmation re-check delays ("" = warm-up+1s,1s)
	WindowDeadline time.Duration // confirmation window length

	Sample         int // items whose attempts are read to derive the per-item call sequence
	SubmitItems    int // size of the batch whose submit time is measured (0 skips)
	DetailRequests int // requests per endpoint for the batch-detail percentiles

	// DatabaseURL names a PostgreSQL server (postgres://user@host:port/db?sslmode=…) to
	// run on instead of a temporary SQLite file: a fresh database crm_bench_<random> is
	// created on it with psql and dropped at the end (unless Keep).
	DatabaseURL string

	APIBin, WorkerBin, SimBin, RedisBin, PsqlBin string

	// PprofDir, when set, receives CPU profiles of the api and every worker covering the
	// batch run (consecutive windows, <proc>-cpu-<n>.pb.gz) and a heap profile of each
	// when the batch is done (<proc>-heap.pb.gz), through CRM_PPROF_ADDR.
	PprofDir    string
	pprofWindow time.Duration // 0: defaultPprofWindow

	Timeout time.Duration // give up when the batch is not done by then
	Keep    bool          // keep the temporary directory
}

// Check validates the options and fills in the derived defaults.
func (o *Options) Check() error {
	if o.Items < 1 || o.Items > 10000 {
		return errors.New("--items must be between 1 and 10000")
	}
	if o.Mode != "self_service" && o.Mode != "none" && o.Mode != "subscription" {
		return errors.New("--mode must be self_service, subscription or none")
	}
	if o.Concurrency < 1 || o.FaultRate < 0 || o.FaultRate >= 1 || o.SubmitItems < 0 || o.SubmitItems > 10000 {
		return errors.New("bad --concurrency, --fault-rate or --submit-items")
	}
	if o.Workers == 0 {
		o.Workers = 1
	}
	if o.HostCap < 0 || o.UpstreamCap < 0 {
		return errors.New("--host-concurrency and --upstream-concurrency must be 0 (unlimited) or more")
	}
	if o.Workers < 1 || o.Workers > 64 {
		return errors.New("--workers must be between 1 and 64")
	}
	if o.DatabaseURL != "" && !isPostgres(o.DatabaseURL) {
		return errors.New("--database-url must be a postgres:// URL (without it the bench runs on a temporary SQLite file)")
	}
	if o.WindowSchedule == "" {
		o.WindowSchedule = "1s"
		if o.Warmup > 0 {
			o.WindowSchedule = fmt.Sprintf("%ds,1s", int(math.Ceil(o.Warmup.Seconds()))+1)
		}
	}
	if _, err := parseScheduleSeconds(o.WindowSchedule); err != nil {
		return fmt.Errorf("--window-schedule: %v", err)
	}
	return nil
}

// Config is what a run was configured with.
type Config struct {
	Items           int     `json:"items"`
	Mode            string  `json:"mode"`
	Concurrency     int     `json:"concurrency"` // per worker process
	Workers         int     `json:"workers"`
	HostCap         int     `json:"host_concurrency"`
	UpstreamCap     int     `json:"upstream_concurrency"`
	Database        string  `json:"database"` // sqlite or postgres
	HostLatencyMS   float64 `json:"host_latency_ms"`
	UpstreamLatMS   float64 `json:"upstream_latency_ms"`
	WarmupS         float64 `json:"warmup_s"`
	FaultRate       float64 `json:"fault_rate"`
	Profile         string  `json:"host_profile"`
	Provider        string  `json:"provider"`
	WindowSchedule  string  `json:"window_schedule"`
	WindowDeadlineS float64 `json:"window_deadline_s"`
}

// Result is the JSON object `crmctl bench --json` prints. Operators' scripts read these
// field names: add fields, never rename one.
type Result struct {
	Items        int     `json:"items"`
	WallS        float64 `json:"wall_s"`
	BoundS       float64 `json:"bound_s"`
	Efficiency   float64 `json:"efficiency"`
	ItemsPerS    float64 `json:"items_per_s"`
	CPUMsPerItem float64 `json:"cpu_ms_per_item"`
	PeakRSSMB    float64 `json:"peak_rss_mb"`

	APICPUMs        float64        `json:"api_cpu_ms"`
	WorkerCPUMs     float64        `json:"worker_cpu_ms"` // all worker processes
	RedisCPUMs      float64        `json:"redis_cpu_ms"`
	APIPeakRSSMB    float64        `json:"api_peak_rss_mb"`
	WorkerPeakRSSMB float64        `json:"worker_peak_rss_mb"` // the largest worker process
	WorkerProcs     []ProcStats    `json:"worker_processes"`
	Status          string         `json:"status"`
	Counts          map[string]int `json:"counts"`

	Bound Bound           `json:"bound"`
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

	Config  Config  `json:"config"`
	Machine Machine `json:"machine"`

	PprofDir      string   `json:"pprof_dir,omitempty"`
	PprofFiles    []string `json:"pprof_files,omitempty"`
	PprofCommands []string `json:"pprof_commands,omitempty"` // how to read them
}

// ProcStats is one process's share of a run.
type ProcStats struct {
	Name      string  `json:"name"`
	CPUMs     float64 `json:"cpu_ms"`
	PeakRSSMB float64 `json:"peak_rss_mb"`
}

// slots is C of the bound: the item steps that can run at the same time.
func (o Options) slots() int { return o.Concurrency * max(o.Workers, 1) }

// Bound explains how bound_s was computed.
type Bound struct {
	Formula        string  `json:"formula"`
	SampledItems   int     `json:"sampled_items"`
	Slots          int     `json:"slots"` // C = concurrency × workers
	HostCallsPerIt float64 `json:"host_calls_per_item"`
	UpCallsPerItem float64 `json:"upstream_calls_per_item"`
	NestedPerItem  float64 `json:"nested_upstream_calls_per_item"`
	FaultsPerItem  float64 `json:"faults_per_item"`
	SlotPreS       float64 `json:"slot_pre_s"`
	SlotPostS      float64 `json:"slot_post_s"`
	WaitS          float64 `json:"wait_s"`
	WaitedFraction float64 `json:"waited_fraction"` // f: sampled items that waited for the warm-up
	GranularityS   float64 `json:"granularity_s"`
	CapacityTermS  float64 `json:"capacity_term_s"`
	// CapTermS is the slot time the configured caps allow: every step holds a host slot
	// (N·S/H) and the import step an upstream slot for its probe (N·S_up/U).
	CapTermS        float64 `json:"cap_term_s"`
	SlotUpstreamS   float64 `json:"slot_upstream_s"` // S_up: direct upstream call time per item
	LatencyTermS    float64 `json:"latency_term_s"`
	WaitsPerItem    float64 `json:"waits_per_item"`
	MeasuredSlotS   float64 `json:"measured_slot_s_per_item"`
	MeasuredWaitedS float64 `json:"measured_first_wait_to_done_s"`
}

// Machine describes where the run happened (the machine may be shared).
type Machine struct {
	CPUs      int    `json:"cpus"`
	LoadStart string `json:"loadavg_start"`
	LoadEnd   string `json:"loadavg_end"`
	MemTotal  string `json:"mem_total"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
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

func machine() Machine {
	h := Machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH}
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
