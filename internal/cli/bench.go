package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/bench"
)

// benchHelp follows the flags in `crmctl bench -h`.
const benchHelp = `Runs a load benchmark on built binaries. Build them first:

  CGO_ENABLED=0 go build -o bin/ ./cmd/api ./cmd/worker ./cmd/crmsim ./cmd/crmctl
  ./bin/crmctl bench --items 1000

The api, worker and crmsim binaries are taken from beside crmctl's own executable
(symlinks resolved), else from ./bin/; --api-bin, --worker-bin and --crmsim-bin override.

It starts crmsim (simulated host + providers, own process, the configured latencies,
warm-up and fault rate), a private redis-server (from PATH, no persistence), the api
and --workers worker processes (each with --concurrency slots) in split mode on SQLite
in a temporary directory — or, with --database-url naming a PostgreSQL server, on a
fresh database crm_bench_<random> it creates there with psql and drops at the end
(never on the database the URL names); registers the host; submits N items and polls until the
batch is done. It then prints items/s, the wall time, the bound, efficiency =
bound/wall, the control-plane CPU per item (utime + stime of the api and all workers
from /proc), their peak RSS (VmHWM), and — with the workers stopped — the time the
API takes to accept a 10 000-item batch (mode none, dry_run) and p50/p99 of
GET /api/v1/batches/{id} and /items?page_size=100 on that batch.

With --pprof DIR the api and each worker serve /debug/pprof on a free loopback port
(CRM_PPROF_ADDR). From the submit until the batch is done the bench saves consecutive
5 s CPU profiles of each process, DIR/<proc>-cpu-<n>.pb.gz (the last window runs to its
end), then one heap profile of each, DIR/<proc>-heap.pb.gz, and prints the commands
that read them, e.g. go tool pprof -top bin/worker DIR/worker*-cpu-*.pb.gz (go tool
pprof merges the windows). DIR must hold no profiles yet. The CPU figures then include
the profiler's small overhead.

The bound is the wall time an ideal scheduler would need given the configured
latencies. The per-item call sequence is read from the evidence the product stores
with every attempt (a sample of --sample items): every host or gateway call costs the
host latency Lh, every direct upstream call the upstream latency Lu, a host call that
itself calls the upstream (account test, gateway chat) another Lu, and a host call
answered 5xx/no answer (a fault, retried by the client) at least 200 ms of back-off.
S_pre is that slot time up to and including the first attempt that waited for the
warm-up, S_post the slot time after the last wait, S = S_pre + S_post (re-checks that
ran before the warm-up was over are not part of the ideal). With N items, C slots
(C = concurrency × workers), warm-up W and asynq's scheduling granularity g = 1 s
(scheduled tasks are stored in whole seconds and forwarded every second):

  bound = max(N·S/C, f·N·S_pre/C + W + g + S_post, N·S/H, N·S_up/U)   when items wait for a warm-up
  bound = max(N·S/C, S, N·S/H, N·S_up/U)                            otherwise

The first term is the slot time the work needs with C slots; the second is the last
item to finish its pre-wait work (no earlier than f·N·S_pre/C, f the fraction of the
sampled items that waited at all: in a pooled group the gateway may route other items'
calls to an account, which warms it up before its own item gets there) waiting W and
finishing.
The last two are the concurrency caps the run is configured with: every step holds a
slot of the host's cap H (--host-concurrency), and the import step a slot of the
upstream's cap U (--upstream-concurrency) for its probe, whose direct upstream calls
take S_up per item.
The warm-up only shows on the gateway, so it applies to mode self_service, not none.`

func (e *env) bench(fs *flag.FlagSet) func(pos []string) error {
	var o bench.Options
	var jsonOut bool
	fs.IntVar(&o.Items, "items", 200, "number of items to submit")
	fs.StringVar(&o.Mode, "mode", "self_service", "access mode of the batch: self_service or none")
	fs.IntVar(&o.Concurrency, "concurrency", 10, "slots of each worker process (CRM_WORKER_CONCURRENCY)")
	fs.IntVar(&o.Workers, "workers", 1, "worker processes (the bound's C is concurrency × workers)")
	fs.IntVar(&o.HostCap, "host-concurrency", 16, "CRM_HOST_CONCURRENCY of the run: steps against the host at once, all workers (0 = unlimited)")
	fs.IntVar(&o.UpstreamCap, "upstream-concurrency", 8, "CRM_UPSTREAM_CONCURRENCY of the run: probes of the provider at once, all workers (0 = unlimited)")
	fs.DurationVar(&o.HostLatency, "host-latency", 20*time.Millisecond, "latency of every simulated host request")
	fs.DurationVar(&o.UpstreamLatency, "upstream-latency", 50*time.Millisecond, "latency of every simulated upstream answer")
	fs.DurationVar(&o.Warmup, "warmup", 0, "gateway warm-up of every account, from its first gateway use (mode self_service)")
	fs.Float64Var(&o.FaultRate, "fault-rate", 0, "fraction of host admin requests answered 500")
	fs.StringVar(&o.HostProfile, "host-profile", "0.1.179", "simulated host profile")
	fs.StringVar(&o.Provider, "provider", "deepseek", "simulated provider of every item")
	fs.StringVar(&o.WindowSchedule, "window-schedule", "", "confirmation re-check delays (default: warm-up+1s,1s)")
	fs.DurationVar(&o.WindowDeadline, "window-deadline", 30*time.Minute, "confirmation window length")
	fs.IntVar(&o.Sample, "sample", 40, "items whose attempts are read to derive the per-item call sequence")
	fs.IntVar(&o.SubmitItems, "submit-items", 10000, "size of the batch whose submit time and detail latency are measured (0 skips)")
	fs.IntVar(&o.DetailRequests, "detail-requests", 300, "requests per endpoint for the batch-detail percentiles")
	fs.StringVar(&o.APIBin, "api-bin", "", "api binary (default: the api beside crmctl, else ./bin/api)")
	fs.StringVar(&o.WorkerBin, "worker-bin", "", "worker binary (default: the worker beside crmctl, else ./bin/worker)")
	fs.StringVar(&o.SimBin, "crmsim-bin", "", "crmsim binary (default: the crmsim beside crmctl, else ./bin/crmsim)")
	fs.StringVar(&o.RedisBin, "redis-server", "", "redis-server binary (default: from PATH)")
	fs.StringVar(&o.DatabaseURL, "database-url", "", "a PostgreSQL server (postgres://user@host:5432/postgres?sslmode=disable) to run on instead of SQLite: a fresh database crm_bench_<random> is created on it and dropped at the end")
	fs.StringVar(&o.PsqlBin, "psql", "", "psql binary, for --database-url (default: from PATH)")
	fs.DurationVar(&o.Timeout, "timeout", 60*time.Minute, "give up when the batch is not done by then")
	fs.StringVar(&o.PprofDir, "pprof", "", "write CPU profiles of the api and each worker covering the batch run (5 s windows) and a heap profile of each into this directory")
	fs.BoolVar(&o.Keep, "keep", false, "keep the temporary directory (logs, SQLite database) and the PostgreSQL database")
	fs.BoolVar(&jsonOut, "json", false, "print one JSON object")
	return func(pos []string) error {
		if len(pos) > 0 {
			return usagef("bench takes no arguments")
		}
		if e.json() {
			jsonOut = true
		}
		if err := o.Check(); err != nil {
			return usagef("%v", err)
		}
		r, err := bench.Run(e.ctx, o, e.stderr)
		if err != nil {
			return err
		}
		if jsonOut {
			enc := json.NewEncoder(e.stdout)
			enc.SetEscapeHTML(false)
			return enc.Encode(r)
		}
		printBench(e.stdout, r)
		return nil
	}
}

func printBench(w io.Writer, r *bench.Result) {
	c := r.Config
	fmt.Fprintf(w, "crmctl bench: %d items, mode %s, %d worker(s) × concurrency %d, host latency %gms, upstream latency %gms, warm-up %gs, fault rate %g\n",
		r.Items, c.Mode, c.Workers, c.Concurrency, c.HostLatencyMS, c.UpstreamLatMS, c.WarmupS, c.FaultRate)
	fmt.Fprintf(w, "database: %s\n", c.Database)
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
	if len(r.WorkerProcs) > 1 {
		for _, p := range r.WorkerProcs {
			fmt.Fprintf(w, "  %-16s %.0f ms CPU, peak RSS %.1f MB\n", p.Name+":", p.CPUMs, p.PeakRSSMB)
		}
	}
	if r.PprofDir != "" {
		fmt.Fprintf(w, "profiles:          %d files in %s (CPU in 5 s windows during the batch run, heap when it was done); read them with:\n", len(r.PprofFiles), r.PprofDir)
		for _, c := range r.PprofCommands {
			fmt.Fprintf(w, "                   %s\n", c)
		}
	}
	if r.SubmitItems > 0 {
		fmt.Fprintf(w, "submit %d items:  %.3f s (mode none, dry run, workers stopped)\n", r.SubmitItems, r.SubmitS)
		fmt.Fprintf(w, "batch detail:      p50 %.1f ms, p99 %.1f ms over %d requests (GET batch p50/p99 %.1f/%.1f ms, items page of 100 %.1f/%.1f ms)\n",
			r.DetailP50Ms, r.DetailP99Ms, r.DetailSamples, r.BatchP50Ms, r.BatchP99Ms, r.ItemsP50Ms, r.ItemsP99Ms)
	}
}
