package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/hostsim"

	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
	"github.com/cn-relay-manager/cn-relay-manager/internal/testpg"
	"github.com/cn-relay-manager/cn-relay-manager/internal/testredis"
)

func runDemo(t *testing.T, o Options) *Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, progress bytes.Buffer
	o.Exit, o.JSON, o.Out, o.Progress, o.ListenAddr = true, true, &out, &progress, "127.0.0.1:0"
	o.DataDir = t.TempDir()
	sum, err := Run(ctx, o)
	if err != nil {
		t.Fatalf("demo: %v\nprogress:\n%s", err, progress.String())
	}
	var printed Summary
	if err := json.Unmarshal(out.Bytes(), &printed); err != nil || printed.BatchID != sum.BatchID {
		t.Fatalf("--json output is not the summary: %v\n%s", err, out.String())
	}
	return sum
}

func checkOutcomes(t *testing.T, sum *Summary) {
	t.Helper()
	want := Expected()
	if len(sum.Items) != len(want) {
		t.Fatalf("got %d items, want %d", len(sum.Items), len(want))
	}
	good := 0
	for _, it := range sum.Items {
		w := want[it.Name]
		if it.Status != w[0] || it.FailureClass != w[1] {
			t.Errorf("%s: got %s/%s want %s/%s (%s)", it.Name, it.Status, it.FailureClass, w[0], w[1], it.Message)
		}
		if it.Attempts < 1 {
			t.Errorf("%s: no attempts recorded", it.Name)
		}
		if it.Status == store.ItemReady {
			good++
		}
	}
	if sum.Status != store.BatchPartiallySucceeded {
		t.Errorf("batch status %s", sum.Status)
	}
	// Pooled: one group per provider of the ready items, one account per item, one managed
	// user holding one key per group.
	providers := map[string]bool{}
	for _, it := range sum.Items {
		if it.Status == store.ItemReady {
			providers[it.Provider] = true
		}
	}
	if c := sum.HostObjects; c.Groups != len(providers) || c.Accounts != good || c.Keys != len(providers) || c.Users != 1 {
		t.Errorf("host objects %+v for %d ready items of %d providers", c, good, len(providers))
	}
	if len(sum.Groups) != len(providers) {
		t.Errorf("groups %+v for %d providers", sum.Groups, len(providers))
	}
	for _, g := range sum.Groups {
		if g.Action != "create" || g.Ready < 1 {
			t.Errorf("first batch group %+v: want created, with a ready account", g)
		}
	}
	// The second batch adds capacity to two of those groups and creates nothing else.
	m := sum.More
	if m == nil || m.Status != store.BatchSucceeded || len(m.Groups) != 2 {
		t.Fatalf("second batch: %+v", m)
	}
	for _, g := range m.Groups {
		if g.Action != "reuse" || g.Ready != 1 {
			t.Errorf("second batch group %+v: want reused, 1 ready", g)
		}
	}
	if c := m.HostObjects; c.Groups != len(providers) || c.Keys != len(providers) || c.Accounts != good+2 {
		t.Errorf("after the second batch the host holds %+v, want the same groups and keys, %d accounts", c, good+2)
	}
}

// The demo batch through the embedded queue (all-in-one) on every host profile.
func TestDemoEmbeddedEveryProfile(t *testing.T) {
	for _, p := range hostsim.Profiles {
		t.Run(p, func(t *testing.T) {
			t.Parallel() // each run has its own simulators, data directory and listener
			sum := runDemo(t, Options{HostProfile: p})
			checkOutcomes(t, sum)
			for _, it := range sum.Items {
				if it.Name == "kimi misspelled models" {
					if len(it.Corrections) < 2 || it.Corrections[0].Method != "separator" {
						t.Errorf("corrections not recorded: %+v", it.Corrections)
					}
				}
				if it.Status == store.ItemReady && (it.Provider == "" || it.Capability["chat"] != true) {
					t.Errorf("%s: provider/capability missing: %q %v", it.Name, it.Provider, it.Capability)
				}
			}
		})
	}
}

// The demo batch through a real (private) redis-server, on SQLite and on PostgreSQL.
func TestDemoRealRedis(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		r := testredis.Start(t)
		checkOutcomes(t, runDemo(t, Options{RedisAddr: r.Addr}))
	})
	t.Run("postgres", func(t *testing.T) {
		r := testredis.Start(t)
		checkOutcomes(t, runDemo(t, Options{RedisAddr: r.Addr, DatabaseURL: testpg.Start(t)}))
	})
}

// The demo ends in sync, and --rollback leaves the simulated host exactly as it was.
func TestDemoReconcileAndRollback(t *testing.T) {
	sum := runDemo(t, Options{Rollback: true})
	if !strings.HasPrefix(sum.Reconcile, "in sync") {
		t.Errorf("reconcile after the demo: %q", sum.Reconcile)
	}
	if sum.Rollback == nil || sum.Rollback.Status != "completed" {
		t.Fatalf("rollback: %+v", sum.Rollback)
	}
	if *sum.HostObjectsAfterRB != *sum.HostObjectsBefore {
		t.Fatalf("host before %+v, after rollback %+v", *sum.HostObjectsBefore, *sum.HostObjectsAfterRB)
	}
}
