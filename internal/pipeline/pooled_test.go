package pipeline

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/host"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/hostsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/upstreamsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/step"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// pooledProviders are the three providers the pooled tests spread keys over.
var pooledProviders = []struct{ provider, model, group string }{
	{"deepseek", "deepseek-flash", "deepseek"},
	{"kimi", "kimi-k2.6", "kimi"},
	{"glm", "glm-5.1", "glm"},
}

func pooledSpecs(tag string, n int) []itemSpec {
	var specs []itemSpec
	for i := 0; i < n; i++ {
		p := pooledProviders[i%len(pooledProviders)]
		key := fmt.Sprintf("sk-pool-%s-%05d-abcdef", tag, i)
		if p.provider == "glm" {
			key = fmt.Sprintf("pool%s%05d.abcdefabcdef", tag, i)
		}
		specs = append(specs, itemSpec{provider: p.provider, key: key, mode: upstreamsim.ModeOK, models: []string{p.model}})
	}
	return specs
}

// pooledItems is the batch size of the pooled tests: 200 items. Under the race detector
// (which slows the in-process simulators several times) one case keeps 200 — the 0.2.x
// profile, whose key limits the size matters for, in self_service mode on SQLite — and the
// others take 48.
func pooledItems(profile, mode string) int {
	if raceEnabled && !(profile == hostsim.Profile02 && mode == ModeSelfService && os.Getenv("CRM_TEST_STORE") != "postgres") {
		return 48
	}
	return 200
}

// driveReady runs every item to its end, one after the other, and requires them ready.
func (h *harness) driveReady(t *testing.T, items []*store.Item) []*store.Item {
	t.Helper()
	var out []*store.Item
	for _, it := range items {
		got := h.drive(it.ID)
		if got.Status != store.ItemReady {
			t.Fatalf("%s: %s %s: %s", got.Name, got.Status, got.FailureClass, got.FailureMessage)
		}
		if got.KeyProof == "" {
			t.Fatalf("%s: ready without its own account proven", got.Name)
		}
		out = append(out, got)
	}
	return out
}

// groupNames lists the host's groups by name (without the built-in default group).
func groupNames(hs *hostsim.Server) []string {
	var names []string
	for _, g := range hs.State().Groups {
		names = append(names, g.Name)
	}
	sort.Strings(names)
	return names
}

// gatewayOK calls the host gateway with a plain HTTP client, as an end user would.
func gatewayOK(t *testing.T, base, key, model string) {
	t.Helper()
	body := fmt.Sprintf(`{"model":%q,"max_tokens":1,"messages":[{"role":"user","content":"hi"}]}`, model)
	req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("gateway %s: %v", model, err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("gateway %s with the group key answered %d", model, resp.StatusCode)
	}
}

// A per_provider batch of three providers pools its keys into three groups, with one
// end-user key per group; a second batch reuses them; rolling the first back leaves the
// second working; rolling the second back leaves the host as it was. Every host profile,
// both access modes.
func TestPooledGroups(t *testing.T) {
	for _, profile := range hostsim.Profiles {
		for _, mode := range []string{ModeSelfService, ModeSubscription} {
			n := pooledItems(profile, mode)
			t.Run(profile+"/"+mode, func(t *testing.T) {
				t.Parallel() // each case has its own simulators and database
				h := newHarness(t, harnessOpts{profile: profile})
				ctx := context.Background()
				before := h.hs.State()
				opts := store.BatchOptions{TargetGroup: store.TargetGroup{Mode: store.GroupPerProvider}}
				want := []string{"deepseek", "glm", "kimi"}
				if mode == ModeSubscription {
					want = []string{"deepseek-sub", "glm-sub", "kimi-sub"}
				}

				first, items := h.submitWith(opts, mode, pooledSpecs("a"+mode[:3], n)...)
				got := h.driveReady(t, items)
				for _, it := range got {
					if !strings.HasPrefix(it.TargetGroup, strings.ReplaceAll(it.Provider, "_", "-")) {
						t.Fatalf("%s: target group %q for provider %s", it.Name, it.TargetGroup, it.Provider)
					}
				}
				c := h.hs.Counts()
				if names := groupNames(h.hs); strings.Join(names, ",") != strings.Join(want, ",") {
					t.Fatalf("groups %v, want %v", names, want)
				}
				if c.Accounts != n || c.Keys != 3 || c.Users != 1 { // the managed user
					t.Fatalf("after %d items: %+v, want %d accounts, 3 keys", n, c, n)
				}
				if mode == ModeSubscription && c.Subscriptions != 3 {
					t.Fatalf("%d subscriptions, want one per group", c.Subscriptions)
				}
				for _, a := range h.hs.State().Accounts {
					if !strings.Contains(a.Name, "-…") || !strings.Contains(a.Name, " crm-") {
						t.Fatalf("account name %q is not operator-facing (provider-…tail crm-tag)", a.Name)
					}
					for m := range a.ModelMapping {
						if strings.HasPrefix(m, "crm-proof-") {
							t.Fatalf("account %q kept its proof alias %s", a.Name, m)
						}
					}
				}
				// Where the host's account test cannot check a chat-only account (0.1.129),
				// each key is proven by a call routed only to its account.
				wantProof := store.KeyProofAccountTest
				if p, _ := host.ProfileByName(profile); !p.AccountTestTrustedChatOnly {
					wantProof = store.KeyProofGatewayAlias
				}
				for _, it := range got {
					if it.KeyProof != wantProof {
						t.Fatalf("%s: key proof %q, want %q", it.Name, it.KeyProof, wantProof)
					}
				}

				second, items2 := h.submitWith(opts, mode, pooledSpecs("b"+mode[:3], 12)...)
				h.driveReady(t, items2)
				if names := groupNames(h.hs); strings.Join(names, ",") != strings.Join(want, ",") {
					t.Fatalf("second batch: groups %v, want %v reused", names, want)
				}
				if c := h.hs.Counts(); c.Keys != 3 || c.Accounts != n+12 {
					t.Fatalf("second batch: %+v, want the same 3 keys and %d accounts", c, n+12)
				}

				act, err := h.eng.Rollback(ctx, first.ID)
				if err != nil || act.Status != "completed" {
					t.Fatalf("rollback first: %+v %v", act, err)
				}
				kept := 0
				for _, o := range act.Objects {
					if o.Result == "kept" {
						kept++
						if !strings.Contains(o.Detail, second.ID) {
							t.Errorf("kept %s %s for %q, want 'still used by batch %s'", o.ResourceType, o.Name, o.Detail, second.ID)
						}
					}
				}
				if kept == 0 {
					t.Fatalf("rollback of the first batch kept nothing: %+v", act.Objects)
				}
				if c := h.hs.Counts(); c.Accounts != 12 || c.Keys != 3 || len(groupNames(h.hs)) != 3 {
					t.Fatalf("after rolling back the first batch: %+v", c)
				}
				for _, k := range h.hs.State().Keys {
					for _, p := range pooledProviders {
						if strings.Contains(k.Name, p.group) {
							gatewayOK(t, h.hs.URL(), k.Key, p.model)
						}
					}
				}

				act, err = h.eng.Rollback(ctx, second.ID)
				if err != nil || act.Status != "completed" {
					t.Fatalf("rollback second: %+v %v", act, err)
				}
				after := h.hs.State()
				if len(after.Groups) != len(before.Groups) || len(after.Accounts) != 0 || len(after.Keys) != 0 ||
					len(after.Users) != len(before.Users) || len(after.Subscriptions) != 0 {
					t.Fatalf("host not back to its start: %+v\nobjects: %+v", h.hs.Counts(), act.Objects)
				}
			})
		}
	}
}

// An existing target group (the operator's own, by name or ID) gets the accounts added and
// is otherwise untouched: rollback deletes our accounts and keys and leaves the group and
// the operator's own account in it.
func TestExistingTargetGroup(t *testing.T) {
	for _, byID := range []bool{false, true} {
		t.Run(fmt.Sprintf("by_id=%v", byID), func(t *testing.T) {
			h := newHarness(t, harnessOpts{profile: hostsim.Profile179})
			ctx := context.Background()
			ops := h.operatorGroup(t, "sold-deepseek", "openai")
			tg := store.TargetGroup{Mode: store.GroupExisting, Name: "sold-deepseek"}
			if byID {
				tg = store.TargetGroup{Mode: store.GroupExisting, ID: ops}
			}
			b, items := h.submitWith(store.BatchOptions{TargetGroup: tg}, ModeSelfService, pooledSpecs("ex", 4)[:1]...)
			got := h.driveReady(t, items)
			acc := h.accountOf(t, got[0])
			if !containsID(acc.GroupIDs, ops) || acc.Platform != "openai" {
				t.Fatalf("account %+v not added to the operator's openai group %d", acc, ops)
			}
			before := h.groupState(t, ops)
			act, err := h.eng.Rollback(ctx, b.ID)
			if err != nil || act.Status != "completed" {
				t.Fatalf("rollback: %+v %v", act, err)
			}
			if after := h.groupState(t, ops); after != before {
				t.Fatalf("rollback changed the existing group: %+v → %+v", before, after)
			}
			c := h.hs.Counts()
			if c.Accounts != 1 || c.Keys != 0 { // the operator's own account stays
				t.Fatalf("after rollback: %+v", c)
			}
			found := false
			for _, o := range act.Objects {
				if o.ResourceType == store.TypeGroup && o.Result == "kept" && strings.Contains(o.Detail, "existing target group") {
					found = true
				}
			}
			if !found {
				t.Fatalf("rollback does not report keeping the existing group: %+v", act.Objects)
			}
		})
	}
}

// A per_provider import meets an operator's group that already has the predictable name:
// it adds capacity to it (the group end users already pay for) and never deletes it.
func TestPerProviderAdoptsOperatorsGroup(t *testing.T) {
	h := newHarness(t, harnessOpts{profile: hostsim.Profile179})
	ops := h.operatorGroup(t, "deepseek", "deepseek")
	b, items := h.submitWith(store.BatchOptions{TargetGroup: store.TargetGroup{Mode: store.GroupPerProvider}}, ModeSelfService, pooledSpecs("ad", 1)...)
	got := h.driveReady(t, items)
	if acc := h.accountOf(t, got[0]); !containsID(acc.GroupIDs, ops) {
		t.Fatalf("account not added to the operator's deepseek group: %+v", acc)
	}
	if _, err := h.eng.Rollback(context.Background(), b.ID); err != nil {
		t.Fatal(err)
	}
	if h.groupState(t, ops).Name != "deepseek" {
		t.Fatal("the operator's group was deleted")
	}
}

// per_item keeps its isolation: one group and one key per item.
func TestPerItemTargetStillWorks(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	b, items := h.submitWith(store.BatchOptions{TargetGroup: store.TargetGroup{Mode: store.GroupPerItem}}, ModeSelfService, pooledSpecs("pi", 3)...)
	got := h.driveReady(t, items)
	if c := h.hs.Counts(); c.Groups != 3 || c.Keys != 3 || c.Accounts != 3 {
		t.Fatalf("per_item: %+v", c)
	}
	for _, it := range got {
		if it.KeyProof != store.KeyProofAccountTest && it.KeyProof != store.KeyProofSoleAccount {
			t.Fatalf("%s: key proof %q", it.Name, it.KeyProof)
		}
	}
	if act, err := h.eng.Rollback(context.Background(), b.ID); err != nil || act.Status != "completed" {
		t.Fatalf("rollback: %+v %v", act, err)
	}
	if c := h.hs.Counts(); c.Groups != 0 || c.Accounts != 0 || c.Keys != 0 {
		t.Fatalf("after rollback: %+v", c)
	}
}

// On 0.2.x (200 keys per user, 60 creations an hour) a 100-item pooled batch creates one
// key per group: far inside the limits.
func TestPooledStaysWithinKeyLimits(t *testing.T) {
	h := newHarness(t, harnessOpts{profile: hostsim.Profile02})
	n := 100
	_, items := h.submitWith(store.BatchOptions{TargetGroup: store.TargetGroup{Mode: store.GroupPerProvider}}, ModeSelfService, pooledSpecs("kl", n)...)
	got := h.driveReady(t, items)
	var uid int64
	for _, u := range h.hs.State().Users {
		if u.Email == h.eng.Settings.ManagedUserEmail {
			uid = u.ID
		}
	}
	if k := h.hs.KeyCreations(uid); k != 3 {
		t.Fatalf("%d key creations for %d items, want 3 (one per group)", k, len(got))
	}
}

// The per-item key limits of 0.2.x are real: a per_item batch of that host hits them, and
// the operator reads why.
func TestPerItemMeetsKeyLimits(t *testing.T) {
	h := newHarness(t, harnessOpts{profile: hostsim.Profile02, host: func(o *hostsim.Options) {
		o.KeyLimits = hostsim.KeyLimits{MaxActive: 2, MaxPerHour: -1}
	}})
	_, items := h.submitWith(store.BatchOptions{TargetGroup: store.TargetGroup{Mode: store.GroupPerItem}}, ModeSelfService, pooledSpecs("pl", 3)...)
	var last *store.Item
	for _, it := range items {
		last = h.drive(it.ID)
	}
	if last.Status != store.ItemFailed || !strings.Contains(last.FailureMessage, "maximum number of API keys") {
		t.Fatalf("third per-item key: %s %s: %s", last.Status, last.FailureClass, last.FailureMessage)
	}
}

// A key whose own account never answers through the gateway is not ready although its
// pooled group answers (through the other accounts): the proof is per key.
func TestPooledKeyProvenOnItsOwn(t *testing.T) {
	for _, profile := range []string{hostsim.Profile129, hostsim.Profile179} {
		t.Run(profile, func(t *testing.T) {
			h := newHarness(t, harnessOpts{profile: profile, window: 2 * time.Minute,
				behavior: func(a hostsim.AccountView) hostsim.Behavior {
					if strings.Contains(a.APIKey, "never") {
						// The host never routes this account (and, on 0.1.179, its test
						// keeps failing as during warm-up).
						return hostsim.Behavior{ChatWarmup: 24 * time.Hour, TestWarmups: 1000}
					}
					return hostsim.Behavior{}
				}})
			opts := store.BatchOptions{TargetGroup: store.TargetGroup{Mode: store.GroupPerProvider}}
			_, good := h.submitWith(opts, ModeSelfService, pooledSpecs("ok", 1)...)
			h.driveReady(t, good)
			_, bad := h.submitWith(opts, ModeSelfService, itemSpec{provider: "deepseek", key: "sk-pool-never-000001-abcdef", mode: upstreamsim.ModeOK, models: []string{"deepseek-flash"}})
			got := h.drive(bad[0].ID)
			if got.Status == store.ItemReady || got.Status == store.ItemReadyWithWarnings {
				t.Fatalf("a key whose account never answered is %s (%s)", got.Status, got.KeyProof)
			}
			if got.FailureClass != "confirmation_timeout" {
				t.Fatalf("class %s: %s", got.FailureClass, got.FailureMessage)
			}
		})
	}
}

// Items of one batch racing on the same pooled group and key create each exactly once.
func TestPooledConcurrentItems(t *testing.T) {
	h := newHarness(t, harnessOpts{profile: hostsim.Profile179})
	_, items := h.submitWith(store.BatchOptions{TargetGroup: store.TargetGroup{Mode: store.GroupPerProvider}}, ModeSelfService, pooledSpecs("cc", 18)...)
	var wg sync.WaitGroup
	errs := make(chan string, len(items))
	for _, it := range items {
		wg.Add(1)
		go func(id string) {
			defer wg.Done()
			ctx := context.Background()
			cur, _ := h.store.GetItem(ctx, id)
			step, seq := cur.Step, cur.Seq
			for i := 0; i < 200 && step != ""; i++ {
				dec, err := h.eng.Run(ctx, step, id, seq)
				if err != nil {
					errs <- err.Error()
					return
				}
				step, seq = dec.Next, dec.Seq
				if dec.Delay > 0 {
					h.clock.Advance(dec.Delay)
				}
			}
			if cur, _ = h.store.GetItem(ctx, id); cur.Status != store.ItemReady {
				errs <- fmt.Sprintf("%s: %s %s: %s", cur.Name, cur.Status, cur.FailureClass, cur.FailureMessage)
			}
		}(it.ID)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if c := h.hs.Counts(); c.Groups != 3 || c.Keys != 3 || c.Accounts != 18 {
		t.Fatalf("racing items: %+v, want 3 groups, 3 keys, 18 accounts", c)
	}
}

// operatorGroup creates a group the way an operator does (not through the product), with
// one account of the operator's own in it, and returns its ID.
func (h *harness) operatorGroup(t *testing.T, name, platform string) int64 {
	t.Helper()
	ctx := context.Background()
	c, err := h.eng.hostClient(h.host)
	if err != nil {
		t.Fatal(err)
	}
	g, err := c.CreateGroup(ctx, hostCreateGroup(name, platform))
	if err != nil {
		t.Fatal(err)
	}
	h.up.AddKey("sk-operator-own-000001", upstreamsim.ModeOK)
	spec := opsSpec(h, platform)
	if _, err := c.CreateAccount(ctx, spec.CreateRequest("operator's own", "", []int64{g.ID}, 1, 1), ""); err != nil {
		t.Fatal(err)
	}
	return g.ID
}

func (h *harness) accountOf(t *testing.T, it *store.Item) hostsim.AccountState {
	t.Helper()
	for _, a := range h.hs.State().Accounts {
		if strings.Contains(a.Notes, it.ID) {
			return a
		}
	}
	t.Fatalf("no account for item %s", it.ID)
	return hostsim.AccountState{}
}

func (h *harness) groupState(t *testing.T, id int64) hostsim.GroupState {
	t.Helper()
	for _, g := range h.hs.State().Groups {
		if g.ID == id {
			return g
		}
	}
	t.Fatalf("group %d is gone", id)
	return hostsim.GroupState{}
}

func hostCreateGroup(name, platform string) host.CreateGroupRequest {
	return host.CreateGroupRequest{Name: name, Platform: platform, SubscriptionType: "standard", RateMultiplier: 1, Description: "the operator's group"}
}

// opsSpec is the operator's own DeepSeek account for a group of platform.
func opsSpec(h *harness, platform string) host.AccountSpec {
	p, _ := host.ProfileByName(h.host.Profile)
	spec, err := p.AccountSpecOn(platform, "deepseek", h.up.BaseURL("deepseek"), "sk-operator-own-000001", map[string]string{"deepseek-flash": "deepseek-flash"})
	if err != nil {
		h.t.Fatal(err)
	}
	return spec
}

// Two worker processes close access for items of one pooled subscription group at the
// same moment: the host refuses the second assign of the (user, group) subscription (409
// SUBSCRIPTION_ALREADY_EXISTS, as a real 0.1.129 host did), and that item adopts the
// winner's subscription instead of failing.
func TestPooledSubscriptionRaceAcrossWorkers(t *testing.T) {
	h := newHarness(t, harnessOpts{profile: hostsim.Profile129, host: func(o *hostsim.Options) {
		o.IdempotentWrite = 150 * time.Millisecond // a slow insert: the other worker meets it
	}})
	other := &Engine{Store: h.eng.Store, Box: h.eng.Box, Catalog: h.eng.Catalog, Prober: h.eng.Prober, Now: h.eng.Now,
		Settings: h.eng.Settings, NewHostClient: h.eng.NewHostClient}
	_, items := h.submitWith(store.BatchOptions{TargetGroup: store.TargetGroup{Mode: store.GroupPerProvider}}, ModeSubscription,
		itemSpec{provider: "deepseek", key: "sk-subrace-000001-abcdef", mode: upstreamsim.ModeOK, models: []string{"deepseek-flash"}},
		itemSpec{provider: "deepseek", key: "sk-subrace-000002-abcdef", mode: upstreamsim.ModeOK, models: []string{"deepseek-flash"}})
	ctx := context.Background()
	// Both items up to their access closure, one after the other.
	for _, it := range items {
		for {
			cur, _ := h.store.GetItem(ctx, it.ID)
			if cur.Step == step.AccessClosure || store.IsTerminal(cur.Status) {
				break
			}
			dec, err := h.eng.Run(ctx, cur.Step, cur.ID, cur.Seq)
			if err != nil {
				t.Fatal(err)
			}
			h.clock.Advance(dec.Delay)
		}
	}
	// Then each worker runs one item's access closure at the same time.
	var wg sync.WaitGroup
	for i, eng := range []*Engine{h.eng, other} {
		wg.Add(1)
		go func(eng *Engine, id string) {
			defer wg.Done()
			cur, _ := h.store.GetItem(ctx, id)
			if _, err := eng.Run(ctx, cur.Step, cur.ID, cur.Seq); err != nil {
				t.Error(err)
			}
		}(eng, items[i].ID)
	}
	wg.Wait()
	for _, it := range items {
		got := h.drive(it.ID)
		if got.Status != store.ItemReady {
			t.Fatalf("%s: %s %s: %s", got.Name, got.Status, got.FailureClass, got.FailureMessage)
		}
	}
	if c := h.hs.Counts(); c.Subscriptions != 1 || c.Keys != 1 || c.Groups != 1 {
		t.Fatalf("host holds %+v, want one group, one subscription and one key", c)
	}
	rows, _ := h.store.AllResources(ctx, store.ResourceFilter{HostID: h.host.ID, Type: store.TypeSubscription})
	if len(rows) != 1 || rows[0].Origin != store.OriginCreated {
		t.Fatalf("subscription ledger rows %+v: want one, created by us", rows)
	}
}

// A dry run shows, per group, whether the import would create it or add to it, and with
// how many accounts; after a real import the same dry run says reuse.
func TestDryRunPlansGroups(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	ctx := context.Background()
	opts := store.BatchOptions{TargetGroup: store.TargetGroup{Mode: store.GroupPerProvider}}
	plan := func(tag string) map[string]store.BatchGroup {
		t.Helper()
		b, items := h.submitBatch(&store.Batch{HostID: h.host.ID, Mode: ModeSelfService, Options: opts, DryRun: true}, pooledSpecs(tag, 5)...)
		for _, it := range items {
			if got := h.drive(it.ID); got.Status != store.ItemSkipped {
				t.Fatalf("dry run item %s: %s", got.Name, got.Status)
			}
		}
		gs, err := h.store.BatchGroups(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]store.BatchGroup{}
		for _, g := range gs {
			out[g.Name] = g
		}
		return out
	}
	before := h.hs.Counts()
	first := plan("dry1")
	if len(first) != 3 || first["deepseek"].Action != "create" || first["deepseek"].Items != 2 || !first["deepseek"].Planned ||
		first["kimi"].Items != 2 || first["glm"].Items != 1 {
		t.Fatalf("dry-run plan on an empty host: %+v", first)
	}
	if h.hs.Counts() != before {
		t.Fatalf("a dry run wrote to the host: %+v → %+v", before, h.hs.Counts())
	}
	_, items := h.submitWith(opts, ModeSelfService, pooledSpecs("real", 3)...)
	h.driveReady(t, items)
	second := plan("dry2")
	for name, g := range second {
		if g.Action != "reuse" {
			t.Fatalf("dry run after the import: group %s would be %s, want reuse", name, g.Action)
		}
	}
}
