package e2e

import (
	"testing"
	"time"

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

	// Periodic reconcile: both workers tick every 3 s, but runs are per minute slot.
	time.Sleep(4 * time.Second)
	var runs struct {
		Items []store.ReconcileRun `json:"items"`
	}
	c.do(t, "GET", "/api/v1/reconcile-runs?limit=100", nil, &runs)
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
