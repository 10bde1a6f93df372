package jobs

import (
	"context"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/cn-relay-manager/cn-relay-manager/internal/testredis"
)

// BenchmarkEnqueueStep is the enqueue the API does per submitted item and the worker per
// step, against a private redis-server (skipped when redis-server is not on PATH). Run with
//
//	go test ./jobs -run '^$' -bench EnqueueStep
func BenchmarkEnqueueStep(b *testing.B) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		b.Skip("redis-server is not on PATH")
	}
	r := testredis.Start(b)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: r.Addr})
	defer client.Close()
	q := &Queue{Client: client}
	ctx := context.Background()
	run := 0 // benchmark functions run more than once; task IDs must not repeat
	b.Run("now", func(b *testing.B) {
		run++
		for i := 0; i < b.N; i++ {
			if err := q.EnqueueStep(ctx, "import", fmt.Sprintf("item-now-%d-%d", run, i), 0, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("scheduled", func(b *testing.B) {
		at := time.Now().Add(time.Hour)
		run++
		for i := 0; i < b.N; i++ {
			if err := q.EnqueueStep(ctx, "account-probe", fmt.Sprintf("item-later-%d-%d", run, i), 1, at); err != nil {
				b.Fatal(err)
			}
		}
	})
}
