package e2e

import (
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// TestResubmitAfterLostAnswer covers the gap found by
// TestCrashRecovery/kill_api_during_submission (see docs/reliability.md): when the api
// dies after committing a batch but before answering, the operator sees a failed POST and
// submits the same keys again (here without an Idempotency-Key). The duplicate-key check
// sees the first batch's keys while they are still in flight, so the resubmitted batch
// skips them instead of importing every key a second time.
func TestResubmitAfterLostAnswer(t *testing.T) {
	n := crashItems(t)
	cl := newCluster(t, clusterOpts{})
	items, good := genItems(cl.up, n, "rs")
	first := cl.submit("first", items)
	second := cl.submit("first (resubmitted after a lost answer)", items)
	a := cl.waitTerminal(first, 5*time.Minute)
	b := cl.waitTerminal(second, 5*time.Minute)
	goodKeys := 0
	for _, ok := range good {
		if ok {
			goodKeys++
		}
	}
	count := func(items []store.Item) map[string]int {
		m := map[string]int{}
		for _, it := range items {
			m[it.Status]++
		}
		return m
	}
	c := cl.hs.Counts()
	t.Logf("first batch %v, resubmitted batch %v, host %+v for %d distinct good keys", count(a), count(b), c, goodKeys)
	if c.Accounts != goodKeys {
		t.Errorf("the host holds %d accounts for %d distinct upstream keys: the resubmission imported keys twice", c.Accounts, goodKeys)
	}
	// Every good key of the resubmission is skipped (the first batch imports it). An
	// invalid key is skipped too when the first batch was still probing it at that moment,
	// or fails again on its own: either way it ends failed somewhere and nowhere imported.
	firstOf := map[string]store.Item{}
	for _, it := range a {
		firstOf[it.Name] = it
	}
	for _, it := range b {
		switch {
		case good[it.Name] && it.Status != store.ItemSkipped:
			t.Errorf("resubmitted good key %s ended %s, want skipped (already being imported)", it.Name, it.Status)
		case !good[it.Name] && it.Status == store.ItemSkipped && firstOf[it.Name].FailureClass != "invalid_key":
			t.Errorf("resubmitted invalid key %s was skipped, but its first import ended %s/%s", it.Name, firstOf[it.Name].Status, firstOf[it.Name].FailureClass)
		case !good[it.Name] && it.Status != store.ItemSkipped && it.FailureClass != "invalid_key":
			t.Errorf("resubmitted invalid key %s ended %s/%s", it.Name, it.Status, it.FailureClass)
		}
	}
}
