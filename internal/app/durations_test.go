package app

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// dumpDurations logs step durations of the first items, to explain a slow run.
func dumpDurations(t *testing.T, st *store.Store, items []*store.Item) {
	per := map[string][]time.Duration{}
	outcomes := map[string]int{}
	for _, it := range items[:min(40, len(items))] {
		atts, _ := st.ListAttempts(context.Background(), it.ID)
		for _, a := range atts {
			per[a.Step] = append(per[a.Step], a.FinishedAt.Sub(a.StartedAt))
			outcomes[a.Step+"/"+a.Outcome]++
		}
	}
	for k, v := range per {
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		t.Logf("%s n=%d p50=%s max=%s", k, len(v), v[len(v)/2], v[len(v)-1])
	}
	t.Logf("%v", outcomes)
}
