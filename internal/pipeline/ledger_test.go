package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cn-relay-manager/cn-relay-manager/internal/host"
	"github.com/cn-relay-manager/cn-relay-manager/internal/limit"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/upstreamsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/step"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// crashAfterCreate creates the account on the host, then fails as if the process died
// before recording the result.
type crashAfterCreate struct {
	HostClient
	crashed *bool
}

func (c crashAfterCreate) CreateAccount(ctx context.Context, req host.CreateAccountRequest, idem string) (*host.Account, error) {
	acc, err := c.HostClient.CreateAccount(ctx, req, idem)
	if err == nil && !*c.crashed {
		*c.crashed = true
		return nil, &host.Error{Status: 0, Code: "transport", Message: "connection reset (simulated crash after the host created the account)"}
	}
	return acc, err
}

func TestCrashBetweenCreateAndLedgerGivesOneObject(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	crashed := false
	h.wrap = func(c HostClient) HostClient { return crashAfterCreate{c, &crashed} }
	_, items := h.submit(ModeSelfService, itemSpec{provider: "deepseek", key: "sk-crash-0000000001", mode: upstreamsim.ModeOK, models: []string{"deepseek-flash"}})
	it := h.drive(items[0].ID)
	if !crashed {
		t.Fatal("the crash was not injected")
	}
	if it.Status != store.ItemReady {
		t.Fatalf("status %s: %s", it.Status, it.FailureMessage)
	}
	if c := h.hs.Counts(); c.Accounts != 1 {
		t.Fatalf("host holds %d accounts, want exactly 1", c.Accounts)
	}
	rows, _, _ := h.store.ListResources(context.Background(), store.ResourceFilter{ItemID: it.ID, Type: store.TypeAccount})
	if len(rows) != 1 || rows[0].HostResourceID == nil {
		t.Fatalf("ledger: %+v", rows)
	}
}

func TestReconcileReportsMissingAndInSync(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	b, items := h.submit(ModeSelfService, itemSpec{provider: "kimi", key: "sk-recon-0000000002", mode: upstreamsim.ModeOK, models: []string{"kimi-k2.6"}})
	h.drive(items[0].ID)
	ctx := context.Background()
	run := &store.ReconcileRun{HostID: h.host.ID, BatchID: b.ID}
	if err := h.eng.Reconcile(ctx, run); err != nil {
		t.Fatal(err)
	}
	if len(run.Findings) != 0 {
		t.Fatalf("fresh import not in sync: %+v", run.Findings)
	}
	rows, _, _ := h.store.ListResources(ctx, store.ResourceFilter{BatchID: b.ID, Type: store.TypeAccount})
	id, _ := strconv.ParseInt(*rows[0].HostResourceID, 10, 64)
	h.hs.DeleteAccountOutOfBand(id)
	run = &store.ReconcileRun{HostID: h.host.ID}
	if err := h.eng.Reconcile(ctx, run); err != nil {
		t.Fatal(err)
	}
	if len(run.Findings) != 1 || run.Findings[0].Kind != FindingMissing || run.Findings[0].ResourceType != store.TypeAccount {
		t.Fatalf("findings: %+v", run.Findings)
	}
}

func TestRollbackTwiceAndRefusals(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	ctx := context.Background()
	before := h.hs.Counts()
	b, items := h.submit(ModeSubscription,
		itemSpec{provider: "deepseek", key: "sk-rb-0000000000003", mode: upstreamsim.ModeOK, models: []string{"deepseek-flash"}},
		itemSpec{provider: "glm", key: "sk-rb-0000000000004", mode: upstreamsim.ModeOK, models: []string{"glm-5.1"}})
	for _, it := range items {
		if got := h.drive(it.ID); got.Status != store.ItemReady {
			t.Fatalf("%s: %s %s", got.Name, got.Status, got.FailureMessage)
		}
	}
	act, err := h.eng.Rollback(ctx, b.ID)
	if err != nil || act.Status != "completed" {
		t.Fatalf("rollback: %+v %v", act, err)
	}
	if after := h.hs.Counts(); after != before {
		t.Fatalf("host not back to its start: before %+v after %+v", before, after)
	}
	got, _ := h.store.GetBatch(ctx, b.ID)
	if got.Status != store.BatchRolledBack {
		t.Fatalf("batch status %s", got.Status)
	}
	act2, err := h.eng.Rollback(ctx, b.ID)
	if err != nil || act2.Status != "completed" || len(act2.Objects) != 0 {
		t.Fatalf("second rollback must be a no-op: %+v %v", act2, err)
	}
	if _, err := h.eng.Rollback(ctx, "no-such-batch"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown batch: %v", err)
	}
	empty, _ := h.submit(ModeNone, itemSpec{provider: "deepseek", key: "sk-rb-0000000000005", mode: upstreamsim.ModeOK})
	if _, err := h.eng.Rollback(ctx, empty.ID); !errors.Is(err, store.ErrNothingRecorded) {
		t.Fatalf("empty batch: %v", err)
	}
}

// The managed user is shared: rolling back one batch keeps it while another batch's key
// still uses it.
func TestRollbackKeepsSharedUser(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	ctx := context.Background()
	b1, i1 := h.submit(ModeSelfService, itemSpec{provider: "deepseek", key: "sk-share-00000000006", mode: upstreamsim.ModeOK, models: []string{"deepseek-flash"}})
	h.drive(i1[0].ID)
	_, i2 := h.submit(ModeSelfService, itemSpec{provider: "kimi", key: "sk-share-00000000007", mode: upstreamsim.ModeOK, models: []string{"kimi-k2.6"}})
	h.drive(i2[0].ID)
	act, err := h.eng.Rollback(ctx, b1.ID)
	if err != nil || act.Status != "completed" {
		t.Fatalf("rollback: %+v %v", act, err)
	}
	if c := h.hs.Counts(); c.Users != 1 || c.Keys != 1 || c.Accounts != 1 {
		t.Fatalf("after rolling back batch 1: %+v", c)
	}
	kept := false
	for _, o := range act.Objects {
		if o.ResourceType == store.TypeUser && o.Result == "kept" {
			kept = true
		}
	}
	if !kept {
		t.Fatalf("user not reported as kept: %+v", act.Objects)
	}
}

func TestDuplicateKeySkippedUnlessForced(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	_, i1 := h.submit(ModeNone, itemSpec{provider: "deepseek", key: "sk-dupkey-0000000008", mode: upstreamsim.ModeOK, models: []string{"deepseek-flash"}})
	h.drive(i1[0].ID)
	_, i2 := h.submit(ModeNone, itemSpec{provider: "deepseek", key: "sk-dupkey-0000000008", models: []string{"deepseek-flash"}})
	it := h.drive(i2[0].ID)
	if it.Status != store.ItemSkipped || it.DuplicateOf != i1[0].ID {
		t.Fatalf("duplicate: %s dup_of=%q", it.Status, it.DuplicateOf)
	}
	if c := h.hs.Counts(); c.Accounts != 1 {
		t.Fatalf("duplicate created host objects: %+v", c)
	}
}

func TestDryRunStoresPlanAndWritesNothing(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	ctx := context.Background()
	sealed, _ := h.box.Seal("sk-dry-run-000000009")
	h.up.AddKey("sk-dry-run-000000009", upstreamsim.ModeOK)
	b := &store.Batch{HostID: h.host.ID, Mode: ModeSelfService, DryRun: true}
	it := &store.Item{Name: "dry", BaseURL: h.up.BaseURL("deepseek"), ProviderHint: "deepseek", APIKeyEnc: sealed, KeyMasked: "sk-dry...0009",
		KeyFingerprint: h.box.Fingerprint("sk-dry-run-000000009"), RequestedModels: []string{"deepseek-flash"}, Step: step.Import}
	if err := h.store.CreateBatch(ctx, b, []*store.Item{it}); err != nil {
		t.Fatal(err)
	}
	got := h.drive(it.ID)
	if got.Status != store.ItemSkipped || got.Plan["account"] == nil || got.Plan["group"] == nil || got.Plan["key"] == nil {
		t.Fatalf("dry run: %s plan=%v", got.Status, got.Plan)
	}
	acc := got.Plan["account"].(map[string]any)
	creds := acc["credentials"].(map[string]any)
	if creds["api_key"] != "sk-dry...0009" {
		t.Fatalf("plan does not mask the key: %v", creds["api_key"])
	}
	if c := h.hs.Counts(); c.Groups+c.Accounts+c.Users+c.Keys != 0 {
		t.Fatalf("dry run wrote to the host: %+v", c)
	}
}

type recordingLimiter struct {
	mu   sync.Mutex
	keys map[string]int
	held int
	max  int
}

func (l *recordingLimiter) Acquire(_ context.Context, key string, limit int) (func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.keys == nil {
		l.keys = map[string]int{}
	}
	l.keys[fmt.Sprintf("%s/%d", key, limit)]++
	l.held++
	l.max = max(l.max, l.held)
	return func() { l.mu.Lock(); l.held--; l.mu.Unlock() }, nil
}

func (l *recordingLimiter) TryAcquire(ctx context.Context, key string, limit int, _ string) (func(), error) {
	return l.Acquire(ctx, key, limit)
}

// Every step takes a host slot and the probe an upstream slot, and releases them.
func TestStepsTakeHostAndUpstreamSlots(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	lim := &recordingLimiter{}
	h.eng.Limiter = lim
	h.eng.Settings.HostConcurrency, h.eng.Settings.UpstreamConcurrency = 4, 2
	_, items := h.submit(ModeNone, itemSpec{provider: "deepseek", key: "sk-limit-000000000010", mode: upstreamsim.ModeOK, models: []string{"deepseek-flash"}})
	h.drive(items[0].ID)
	upHost := "upstream:" + strings.Split(strings.TrimPrefix(h.up.URL(), "http://"), ":")[0] // the simulator's host name
	if lim.keys["host:"+h.host.ID+"/4"] < 2 || lim.keys[upHost+"/2"] != 1 {
		t.Fatalf("slots taken: %v", lim.keys)
	}
	if lim.held != 0 || lim.max != 2 {
		t.Fatalf("held %d after the steps, max %d at once", lim.held, lim.max)
	}
}

// Drift the operator can repair safely: an account in error, unschedulable and unbound.
// Reconcile reports each with a code; an explicit repair fixes them and says so; the next
// reconcile is in sync.
func TestReconcileRepairSafeDrift(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	b, items := h.submit(ModeNone, itemSpec{provider: "deepseek", key: "sk-repair-0000000011", mode: upstreamsim.ModeOK, models: []string{"deepseek-flash"}})
	h.drive(items[0].ID)
	ctx := context.Background()
	rows, _, _ := h.store.ListResources(ctx, store.ResourceFilter{BatchID: b.ID, Type: store.TypeAccount})
	id, _ := strconv.ParseInt(*rows[0].HostResourceID, 10, 64)
	cfg, _ := HostConfig(h.box, h.host)
	c := host.New(cfg)
	status, none := "error", []int64{}
	if _, err := c.UpdateAccount(ctx, id, host.UpdateAccountRequest{Status: &status, GroupIDs: &none}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetSchedulable(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	run := &store.ReconcileRun{HostID: h.host.ID, BatchID: b.ID}
	if err := h.eng.Reconcile(ctx, run); err != nil {
		t.Fatal(err)
	}
	codes := map[string]bool{}
	for _, f := range run.Findings {
		codes[f.Code] = true
	}
	if !codes[CodeAccountError] || !codes[CodeAccountUnschedulable] || !codes[CodeBindingLost] {
		t.Fatalf("findings: %+v", run.Findings)
	}
	if err := h.eng.Repair(ctx, run); err != nil {
		t.Fatal(err)
	}
	for _, f := range run.Findings {
		if f.Repair == "" || strings.HasPrefix(f.Repair, "failed") {
			t.Errorf("finding %s not repaired: %q", f.Code, f.Repair)
		}
	}
	again := &store.ReconcileRun{HostID: h.host.ID, BatchID: b.ID}
	if err := h.eng.Reconcile(ctx, again); err != nil {
		t.Fatal(err)
	}
	if len(again.Findings) != 0 {
		t.Fatalf("still drifting after repair: %+v", again.Findings)
	}
}

// fullLimiter refuses every slot, as a full cap does.
type fullLimiter struct{ waiters []string }

func (l *fullLimiter) Acquire(context.Context, string, int) (func(), error) {
	return nil, errors.New("Acquire must not be used by a step")
}

func (l *fullLimiter) TryAcquire(_ context.Context, key string, n int, waiter string) (func(), error) {
	l.waiters = append(l.waiters, waiter)
	return nil, &limit.Busy{Key: key, Limit: n, Queued: true}
}

// A step whose cap is full returns at once with the *limit.Busy, having written nothing
// and called no one: it waits in the cap's list under its task ID, not in its slot.
func TestStepOnAFullCapChangesNothing(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	lim := &fullLimiter{}
	h.eng.Limiter = lim
	h.eng.Settings.HostConcurrency = 4
	_, items := h.submit(ModeNone, itemSpec{provider: "deepseek", key: "sk-limit-000000000011", mode: upstreamsim.ModeOK, models: []string{"deepseek-flash"}})
	it := items[0]
	dec, err := h.eng.Run(context.Background(), it.Step, it.ID, it.Seq)
	if b, busy := limit.IsBusy(err); !busy || !b.Queued || dec.Next != "" {
		t.Fatalf("Run on a full cap: decision %+v, error %v", dec, err)
	}
	if len(lim.waiters) != 1 || lim.waiters[0] != step.TaskID(it.Step, it.ID, it.Seq) {
		t.Fatalf("waiter names %v", lim.waiters)
	}
	got, _ := h.store.GetItem(context.Background(), it.ID)
	atts, _ := h.store.ListAttempts(context.Background(), it.ID)
	if got.Seq != it.Seq || got.Step != it.Step || got.Status != it.Status || len(atts) != 0 || len(got.Capability) != 0 {
		t.Fatalf("a refused step changed the item (%d/%s/%s), wrote %d attempts or probed (%v)", got.Seq, got.Step, got.Status, len(atts), got.Capability)
	}
	if c := h.hs.Counts(); c.Groups+c.Accounts != 0 {
		t.Fatalf("a refused step wrote to the host: %+v", c)
	}
}
