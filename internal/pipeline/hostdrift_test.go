package pipeline

// Behaviours of the real hosts the simulator once lacked (issue 20: seen on sub2api
// 0.1.129 and 0.1.179 built from source). Each test fails on a pipeline that ignores the
// behaviour.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/failure"
	"github.com/cn-relay-manager/cn-relay-manager/internal/host"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/hostsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/upstreamsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/step"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// driveTo runs an item's steps until its next step is step (or it is terminal).
func (h *harness) driveTo(id, step string) {
	h.t.Helper()
	ctx := context.Background()
	it, err := h.store.GetItem(ctx, id)
	if err != nil {
		h.t.Fatal(err)
	}
	next, seq := it.Step, it.Seq
	for i := 0; i < 100 && next != "" && next != step; i++ {
		dec, err := h.eng.Run(ctx, next, id, seq)
		if err != nil {
			h.t.Fatalf("run %s: %v", next, err)
		}
		h.clock.Advance(dec.Delay)
		next, seq = dec.Next, dec.Seq
	}
	if next != step {
		got, _ := h.store.GetItem(ctx, id)
		h.t.Fatalf("item %s did not reach %s: %s %s %s", id, step, got.Status, got.FailureClass, got.FailureMessage)
	}
}

// finish runs an item's remaining steps on eng; safe to call from several goroutines.
func (h *harness) finish(eng *Engine, id string) error {
	ctx := context.Background()
	it, err := h.store.GetItem(ctx, id)
	if err != nil {
		return err
	}
	next, seq := it.Step, it.Seq
	for i := 0; i < 100 && next != ""; i++ {
		dec, err := eng.Run(ctx, next, id, seq)
		if err != nil {
			return fmt.Errorf("run %s: %w", next, err)
		}
		h.clock.Advance(dec.Delay)
		next, seq = dec.Next, dec.Seq
	}
	return nil
}

// countLogins counts logins as end users.
type countLogins struct {
	HostClient
	n *atomic.Int32
}

func (c countLogins) Login(ctx context.Context, email, password string) (*host.Session, error) {
	c.n.Add(1)
	return c.HostClient.Login(ctx, email, password)
}

// otherProcess is a second engine on the same database and host: another worker process,
// with its own host clients, token cache and locks.
func (h *harness) otherProcess() *Engine {
	return &Engine{Store: h.store, Box: h.box, Catalog: h.eng.Catalog, Prober: h.eng.Prober, Now: h.eng.Now,
		Settings: h.eng.Settings, NewHostClient: h.eng.NewHostClient}
}

// Items of one batch top up their shared managed user at the same moment. The host keeps a
// write with an Idempotency-Key "in progress" while it runs and answers a second one with
// the same key 409 IDEMPOTENCY_IN_PROGRESS; that must never cost a good key. The balance is
// added once.
func TestConcurrentTopUpsOfOneUser(t *testing.T) {
	for _, procs := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d worker processes", procs), func(t *testing.T) {
			// A top-up in flight for 300 ms: every concurrent one overlaps it.
			h := newHarness(t, harnessOpts{host: func(o *hostsim.Options) { o.IdempotentWrite = 300 * time.Millisecond }})
			var logins atomic.Int32
			h.wrap = func(c HostClient) HostClient { return countLogins{c, &logins} }
			var specs []itemSpec
			for i := 0; i < 8; i++ {
				specs = append(specs, itemSpec{provider: "deepseek", key: fmt.Sprintf("sk-topup-%d-%012d", procs, i), mode: upstreamsim.ModeOK, models: []string{"deepseek-flash"}})
			}
			_, items := h.submit(ModeSelfService, specs...)
			for _, it := range items {
				h.driveTo(it.ID, step.AccessClosure)
			}

			engines := []*Engine{h.eng, h.otherProcess()}[:procs]
			var wg sync.WaitGroup
			errs := make(chan error, len(items))
			start := make(chan struct{})
			for i, it := range items {
				wg.Add(1)
				go func(eng *Engine, id string) {
					defer wg.Done()
					<-start
					errs <- h.finish(eng, id)
				}(engines[i%procs], it.ID)
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			for _, it := range items {
				got, _ := h.store.GetItem(context.Background(), it.ID)
				if got.Status != store.ItemReady {
					t.Errorf("%s: %s %s: %s", got.Name, got.Status, got.FailureClass, got.FailureMessage)
				}
			}
			st := h.hs.State()
			if len(st.Users) != 1 || st.Users[0].Balance != 10 {
				t.Fatalf("managed user(s) %+v: want one user topped up once to 10", st.Users)
			}
			// Hosts allow 20 logins a minute per client: the items share one login per process.
			if n := logins.Load(); n != int32(procs) {
				t.Errorf("%d logins as the managed user for %d items in %d process(es)", n, len(items), procs)
			}
		})
	}
}

// Rollback deletes the managed user this product created; the user's JWTs outlive it on
// the host (401 USER_NOT_FOUND). The next batch in the same process must create the user
// again and use a fresh token, and rolling that batch back must delete the new user too:
// the host ends exactly where it started, twice.
func TestRollbackThenImportInOneProcess(t *testing.T) {
	for _, mode := range []string{ModeSelfService, ModeSubscription} {
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t, harnessOpts{})
			ctx := context.Background()
			before := h.hs.Counts()
			for round := 1; round <= 2; round++ {
				b, items := h.submit(mode,
					itemSpec{provider: "deepseek", key: fmt.Sprintf("sk-rbimp-%s-%d-0001", mode, round), mode: upstreamsim.ModeOK, models: []string{"deepseek-flash"}},
					itemSpec{provider: "kimi", key: fmt.Sprintf("sk-rbimp-%s-%d-0002", mode, round), mode: upstreamsim.ModeOK, models: []string{"kimi-k2.6"}})
				for _, it := range items {
					if got := h.drive(it.ID); got.Status != store.ItemReady {
						t.Fatalf("round %d: %s: %s %s: %s", round, got.Name, got.Status, got.FailureClass, got.FailureMessage)
					}
				}
				if c := h.hs.Counts(); c.Users != 1 || c.Keys != 2 {
					t.Fatalf("round %d: host holds %+v after the batch", round, c)
				}
				act, err := h.eng.Rollback(ctx, b.ID)
				if err != nil || act.Status != "completed" {
					t.Fatalf("round %d: rollback: %+v %v", round, act, err)
				}
				if after := h.hs.Counts(); after != before {
					t.Fatalf("round %d: host not back to its start: before %+v after %+v\n%+v", round, before, after, act.Objects)
				}
			}
		})
	}
}

// A host whose outbound URL policy refuses the upstream: the item fails with its own class,
// host_policy, and a message that names the host settings to change; a later dry run on the
// same host flags the upstream before any write.
func TestOutboundPolicyRefusal(t *testing.T) {
	for _, profile := range []string{hostsim.ProfileFork, hostsim.Profile179, hostsim.Profile129} {
		t.Run(profile, func(t *testing.T) {
			h := newHarness(t, harnessOpts{profile: profile, host: func(o *hostsim.Options) {
				o.OutboundPolicy = &hostsim.OutboundPolicy{UpstreamHosts: []string{"api.deepseek.com"}}
			}})
			_, items := h.submit(ModeSelfService, itemSpec{provider: "deepseek", key: "sk-policy-000000000001", mode: upstreamsim.ModeOK, models: []string{"deepseek-flash"}})
			got := h.drive(items[0].ID)
			if got.Status != store.ItemFailed || got.FailureClass != string(failure.HostPolicy) {
				t.Fatalf("%s %s: %s", got.Status, got.FailureClass, got.FailureMessage)
			}
			for _, want := range []string{"upstream host allowlist", "SECURITY_URL_ALLOWLIST_UPSTREAM_HOSTS", "allow private hosts", "allow insecure http", "127.0.0.1"} {
				if !strings.Contains(got.FailureMessage, want) {
					t.Errorf("message does not name %q: %s", want, got.FailureMessage)
				}
			}

			before := h.hs.Counts()
			sealed, _ := h.box.Seal("sk-policy-000000000002")
			h.up.AddKey("sk-policy-000000000002", upstreamsim.ModeOK)
			b := &store.Batch{HostID: h.host.ID, Mode: ModeSelfService, DryRun: true}
			dry := &store.Item{Name: "dry", BaseURL: h.up.BaseURL("deepseek"), ProviderHint: "deepseek", APIKeyEnc: sealed, KeyMasked: "sk-pol...0002",
				KeyFingerprint: h.box.Fingerprint("sk-policy-000000000002"), RequestedModels: []string{"deepseek-flash"}, Step: step.Import}
			if err := h.store.CreateBatch(context.Background(), b, []*store.Item{dry}); err != nil {
				t.Fatal(err)
			}
			d := h.drive(dry.ID)
			flag, _ := d.Plan["host_policy"].(map[string]any)
			if d.Status != store.ItemSkipped || flag == nil || !strings.Contains(fmt.Sprint(flag["warning"]), "upstream host allowlist") {
				t.Fatalf("dry run not flagged: %s plan=%v warnings=%v", d.Status, d.Plan["host_policy"], d.Warnings)
			}
			if after := h.hs.Counts(); after != before {
				t.Fatalf("the dry run wrote to the host: %+v -> %+v", before, after)
			}
		})
	}
}
