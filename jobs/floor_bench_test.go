package jobs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/cn-relay-manager/cn-relay-manager/internal/limit"
	"github.com/cn-relay-manager/cn-relay-manager/internal/pipeline"
	"github.com/cn-relay-manager/cn-relay-manager/internal/step"
	"github.com/cn-relay-manager/cn-relay-manager/internal/testredis"
)

// floorRunner is a pipeline that does no work: each step takes its caps as the engine
// does (the host's for every step, the upstream's for the import) and hands the item to
// the next step of the table, until the last.
type floorRunner struct {
	sem  *limit.Semaphore
	done atomic.Int64
}

func (r *floorRunner) Run(ctx context.Context, name, itemID string, seq int) (pipeline.Decision, error) {
	taskID := step.TaskID(name, itemID, seq)
	release, err := r.sem.TryAcquire(ctx, "host:floor", 16, taskID)
	if err != nil {
		return pipeline.Decision{}, err
	}
	defer release()
	if name == step.Import {
		up, err := r.sem.TryAcquire(ctx, "upstream:floor", 8, taskID)
		if err != nil {
			return pipeline.Decision{}, err
		}
		up()
	}
	for i, s := range step.Table {
		if s.Name == name && i+1 < len(step.Table) {
			return pipeline.Decision{ItemID: itemID, Next: step.Table[i+1].Name, Seq: seq + 1}, nil
		}
	}
	r.done.Add(1)
	return pipeline.Decision{}, nil
}

// cpuSelf is the CPU time this process has used.
func cpuSelf() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuRedis is the CPU time the Redis server has used (INFO cpu).
func cpuRedis(ctx context.Context, b *testing.B, rc *redis.Client) time.Duration {
	info, err := rc.Info(ctx, "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

// BenchmarkItemQueueFloor is what an item costs the control plane in the queue alone:
// its three steps carried by asynq with the worker's settings, the concurrency caps
// taken and released as the engine takes them, and nothing else (no database, no host,
// no upstream). It reports the worker process's CPU and the Redis server's CPU per item:
// the part of crmctl bench's "CPU per item" that no change inside the steps can remove
// (docs/perf.md). Run with
//
//	go test ./jobs -run '^$' -bench ItemQueueFloor -benchtime 2000x
func BenchmarkItemQueueFloor(b *testing.B) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		b.Skip("redis-server is not on PATH")
	}
	ctx := context.Background()
	r := testredis.Start(b)
	rc := r.Client(b, 0)
	opt := asynq.RedisClientOpt{Addr: r.Addr}
	client := asynq.NewClient(opt)
	defer client.Close()
	ins := asynq.NewInspector(opt)
	defer ins.Close()
	q := &Queue{Client: client, Inspector: ins, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	runner := &floorRunner{sem: &limit.Semaphore{Redis: rc, Wake: q.Wake}}
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: 10, Queues: Queues, StrictPriority: true,
		DelayedTaskCheckInterval: time.Second, TaskCheckInterval: 50 * time.Millisecond,
		RetryDelayFunc: RetryDelay, IsFailure: IsFailure, LogLevel: asynq.ErrorLevel})
	h := &Handlers{Runner: runner, Queue: q, Log: q.Log}
	if err := srv.Start(h.Mux()); err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	b.ResetTimer()
	cpu0, redis0 := cpuSelf(), cpuRedis(ctx, b, rc)
	for i := 0; i < b.N; i++ {
		if err := q.EnqueueStep(ctx, step.Import, fmt.Sprintf("floor-%d", i), 0, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Minute)
	for runner.done.Load() < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d items done after 10 minutes", runner.done.Load(), b.N)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.StopTimer()
	cpu, redisCPU := cpuSelf()-cpu0, cpuRedis(ctx, b, rc)-redis0
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "worker-µs/item")
	b.ReportMetric(float64(redisCPU.Microseconds())/float64(b.N), "redis-µs/item")
	b.ReportMetric(float64((cpu+redisCPU).Microseconds())/float64(b.N)/1000, "ms/item")
}
