package e2e

import (
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
	"github.com/cn-relay-manager/cn-relay-manager/internal/testpg"
)

// Two worker processes against one Redis and one PostgreSQL database process one batch:
// no step runs twice to effect, and the periodic reconcile runs once per slot although
// both workers run the scheduler.
func TestMultiWorkerPostgres(t *testing.T) {
	dsn := testpg.Start(t)
	s := startSplit(t, 2, 20*time.Millisecond, "CRM_DATABASE_URL="+dsn,
		"CRM_RECONCILE_CRON=@every 3s", "CRM_WORKER_CONCURRENCY=4", "CRM_HOST_CONCURRENCY=3")
	c, sims := s.c, s.sims
	started := time.Now()
	id := c.submit(t, sims)
	items := c.waitBatch(t, id, 2*time.Minute, s.logs)
	checkItems(t, items, sims)

	// Each attempt is one row: the sequence numbers of an item's attempts are 0..n-1.
	for _, it := range items {
		var detail struct {
			Attempts []store.Attempt `json:"attempts"`
		}
		c.do(t, "GET", "/api/v1/batches/"+id+"/items/"+it.ID, nil, &detail)
		for i, a := range detail.Attempts {
			if a.Seq != i {
				t.Errorf("%s: attempt %d has seq %d (a step ran twice or was lost)", it.Name, i, a.Seq)
			}
		}
		if len(detail.Attempts) != it.AttemptCount {
			t.Errorf("%s: %d attempt rows, item says %d", it.Name, len(detail.Attempts), it.AttemptCount)
		}
	}

	// Periodic reconcile: both workers tick every 3 s, but runs are per minute slot. Wait
	// until a periodic run has finished and both schedulers have fired twice after it with
	// nothing left in the queue: any duplicate run of that slot would exist by then.
	var runs struct {
		Items []store.ReconcileRun `json:"items"`
	}
	listRuns := func() {
		runs.Items = nil
		c.do(t, "GET", "/api/v1/reconcile-runs?limit=100", nil, &runs)
	}
	var firstDone time.Time
	if !waitFor(time.Minute, func() bool {
		listRuns()
		for _, run := range runs.Items {
			if run.Slot != "" && run.FinishedAt != nil {
				firstDone = *run.FinishedAt
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no periodic reconcile run finished within a minute: %+v", runs.Items)
	}
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: s.redis.Addr})
	defer insp.Close()
	if !waitFor(time.Minute, func() bool {
		entries, err := insp.SchedulerEntries()
		if err != nil || len(entries) < 2 {
			return false
		}
		for _, e := range entries {
			if e.Prev.Before(firstDone.Add(3 * time.Second)) {
				return false
			}
		}
		q, err := insp.GetQueueInfo("default")
		return err == nil && q.Pending == 0 && q.Active == 0
	}) {
		t.Fatalf("the two schedulers did not both fire twice after the first periodic run")
	}
	listRuns()
	slots := map[string]int{}
	for _, run := range runs.Items {
		if run.Slot != "" {
			slots[run.Slot]++
		}
	}
	minutes := int(time.Since(started)/time.Minute) + 2
	if len(slots) == 0 || len(slots) > minutes {
		t.Fatalf("periodic runs per slot: %v (test spanned at most %d minute slots)", slots, minutes)
	}
	for slot, n := range slots {
		if n != 1 {
			t.Errorf("slot %s ran %d times", slot, n)
		}
	}
}
