package pipeline

import (
	"testing"

	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// TestStatementsPerItem bounds what an item costs the database once its pooled group,
// the managed user and that user's key exist (the steady state of a large batch): the
// statements of its three steps, BEGIN and COMMIT included. Each statement is CPU in the
// worker (SQLite runs in the process) or a round trip (PostgreSQL); docs/perf.md has the
// profile. A change that adds statements to every item fails here and must say why.
func TestStatementsPerItem(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	_, items := h.submitWith(store.BatchOptions{TargetGroup: store.TargetGroup{Mode: store.GroupPerProvider}}, ModeSelfService,
		pooledSpecs("st", 30)...)
	h.driveReady(t, items[:6]) // every provider's group, the user and the user's keys exist now
	before := h.store.Statements()
	h.driveReady(t, items[6:])
	// driveReady reads each item twice itself (before and after it drives it).
	per := float64(h.store.Statements()-before)/float64(len(items)-6) - 2
	t.Logf("%.2f statements per item", per)
	const limit = 35.5 // measured: 34.0 on SQLite, 35.0 on PostgreSQL (it locks the batch row when an item ends); 37 before steps kept their ledger rows
	if per > limit {
		t.Errorf("%.2f statements per item, want at most %.1f", per, limit)
	}
}
