package pipeline

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/failure"
	"github.com/cn-relay-manager/cn-relay-manager/internal/host"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/hostsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/upstreamsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/step"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

func behaviourFor(key string, b hostsim.Behavior) func(hostsim.AccountView) hostsim.Behavior {
	return func(a hostsim.AccountView) hostsim.Behavior {
		if a.APIKey == key {
			return b
		}
		return hostsim.Behavior{}
	}
}

// The first account test answers 403 while the host warms up: the step waits inside the
// window and the item becomes ready (0.1.179 trusts its account test) or
// ready-with-the-test-skipped (0.1.129, where the test cannot check chat-only upstreams).
func TestAccountTest403RaceEveryProfile(t *testing.T) {
	for _, p := range hostsim.Profiles {
		t.Run(p, func(t *testing.T) {
			key := "sk-race-403-000000001"
			h := newHarness(t, harnessOpts{profile: p, behavior: behaviourFor(key, hostsim.Behavior{TestWarmups: 2})})
			_, items := h.submit(ModeSelfService, itemSpec{provider: "deepseek", key: key, mode: upstreamsim.ModeOK, models: []string{"deepseek-flash"}})
			it := h.drive(items[0].ID)
			if it.Status != store.ItemReady {
				t.Fatalf("status %s (%s: %s)", it.Status, it.FailureClass, it.FailureMessage)
			}
			atts := h.attempts(it.ID)
			waits := countOutcome(atts, step.AccountProbe, store.OutcomeWaiting)
			if prof, _ := host.ProfileByName(p); prof.AccountTestTrustedChatOnly {
				if waits != 2 {
					t.Errorf("want 2 waiting account-probe attempts, got %d", waits)
				}
			} else if countOutcome(atts, step.AccountProbe, store.OutcomeAdvisory) != 1 {
				t.Errorf("0.1.129: account test must be advisory: %+v", atts)
			}
			if it.AccessStatus != "proven" || it.SmokePreview == "" {
				t.Errorf("no end-user proof recorded: %q %q", it.AccessStatus, it.SmokePreview)
			}
		})
	}
}

// The host answers 503 for 20 s after the account is created: the item waits (recorded
// as waiting attempts, rescheduled 2, 5, 10 s ...) and ends ready.
func TestWarmup503For20sThenReady(t *testing.T) {
	key := "sk-warm-503-000000002"
	h := newHarness(t, harnessOpts{behavior: behaviourFor(key, hostsim.Behavior{ChatWarmup: 20 * time.Second})})
	_, items := h.submit(ModeSelfService, itemSpec{provider: "kimi", key: key, mode: upstreamsim.ModeOK, models: []string{"kimi-k2.6"}})
	it := h.drive(items[0].ID)
	if it.Status != store.ItemReady {
		t.Fatalf("status %s (%s: %s)", it.Status, it.FailureClass, it.FailureMessage)
	}
	atts := h.attempts(it.ID)
	if n := countOutcome(atts, step.AccessClosure, store.OutcomeWaiting); n < 2 {
		t.Fatalf("want waiting access-closure attempts, got %d: %+v", n, atts)
	}
	for _, a := range atts {
		if a.Outcome == store.OutcomeWaiting && !strings.Contains(a.Message, "next check in") {
			t.Errorf("waiting attempt without its schedule: %q", a.Message)
		}
	}
}

// A window shorter than the warm-up ends in confirmation_timeout with the evidence kept.
func TestWindowShorterThanWarmupTimesOut(t *testing.T) {
	key := "sk-warm-long-00000003"
	h := newHarness(t, harnessOpts{window: 10 * time.Second, behavior: behaviourFor(key, hostsim.Behavior{ChatWarmup: time.Minute})})
	_, items := h.submit(ModeSelfService, itemSpec{provider: "glm", key: key, mode: upstreamsim.ModeOK, models: []string{"glm-5.1"}})
	it := h.drive(items[0].ID)
	if it.Status != store.ItemFailed || it.FailureClass != string(failure.ConfirmationTimeout) {
		t.Fatalf("got %s/%s: %s", it.Status, it.FailureClass, it.FailureMessage)
	}
	atts := h.attempts(it.ID)
	last := atts[len(atts)-1]
	if len(last.Evidence) == 0 {
		t.Fatal("the final attempt keeps no evidence")
	}
}

// The upstream runs out of quota after the import: the proof fails and the direct
// upstream call in the same step classifies it as no_quota, not a host problem.
func TestQuotaExhaustedAfterImportIsNoQuota(t *testing.T) {
	key := "sk-quota-later-000004"
	h := newHarness(t, harnessOpts{})
	_, items := h.submit(ModeSelfService, itemSpec{provider: "deepseek", key: key, mode: upstreamsim.ModeOK, models: []string{"deepseek-flash"}})
	ctx := context.Background()
	it, _ := h.store.GetItem(ctx, items[0].ID)
	dec, err := h.eng.Run(ctx, step.Import, it.ID, it.Seq)
	if err != nil || dec.Next != step.AccountProbe {
		t.Fatalf("import: %+v %v", dec, err)
	}
	h.up.SetKeyMode(key, upstreamsim.ModeNoQuota)
	it = h.drive(it.ID)
	if it.Status != store.ItemFailed || it.FailureClass != string(failure.NoQuota) {
		t.Fatalf("got %s/%s: %s", it.Status, it.FailureClass, it.FailureMessage)
	}
}

// brokenGateway makes the host's path fail while the upstream answers directly.
type brokenGateway struct{ HostClient }

func (b brokenGateway) GatewayChat(context.Context, string, host.ChatRequest) (*host.ChatResult, error) {
	return nil, &host.Error{Status: 502, Code: "upstream_error", Message: "Upstream request failed", Method: "POST", Path: "/v1/chat/completions"}
}

func TestHostPathBrokenIsCompatibilityGap(t *testing.T) {
	key := "sk-gap-00000000000005"
	h := newHarness(t, harnessOpts{})
	h.wrap = func(c HostClient) HostClient { return brokenGateway{c} }
	_, items := h.submit(ModeSelfService, itemSpec{provider: "qwen", key: key, mode: upstreamsim.ModeOK, models: []string{"qwen3.6-plus"}})
	it := h.drive(items[0].ID)
	if it.Status != store.ItemFailed || it.FailureClass != string(failure.HostCompatibilityGap) {
		t.Fatalf("got %s/%s: %s", it.Status, it.FailureClass, it.FailureMessage)
	}
}

func TestSubscriptionModeAndNoneMode(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	_, items := h.submit(ModeSubscription, itemSpec{provider: "deepseek", key: "sk-sub-000000000006", mode: upstreamsim.ModeOK, models: []string{"deepseek-flash"}})
	it := h.drive(items[0].ID)
	if it.Status != store.ItemReady {
		t.Fatalf("subscription: %s %s %s", it.Status, it.FailureClass, it.FailureMessage)
	}
	st := h.hs.State()
	if len(st.Subscriptions) != 1 {
		t.Fatalf("want 1 subscription, host has %+v", st.Subscriptions)
	}
	_, items = h.submit(ModeNone, itemSpec{provider: "kimi", key: "sk-none-00000000007", mode: upstreamsim.ModeOK, models: []string{"kimi-k2.6"}})
	it = h.drive(items[0].ID)
	if it.Status != store.ItemReady || it.AccessStatus != "" {
		t.Fatalf("none: %s %s access=%q", it.Status, it.FailureMessage, it.AccessStatus)
	}
	if c := h.hs.Counts(); c.Keys != 1 {
		t.Fatalf("mode none created end-user objects: %+v", c)
	}
}

// A duplicate delivery of a step that already ran changes nothing.
func TestDuplicateDeliveryIsNoOp(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	_, items := h.submit(ModeSelfService, itemSpec{provider: "deepseek", key: "sk-dup-000000000008", mode: upstreamsim.ModeOK, models: []string{"deepseek-flash"}})
	ctx := context.Background()
	if _, err := h.eng.Run(ctx, step.Import, items[0].ID, 0); err != nil {
		t.Fatal(err)
	}
	dec, err := h.eng.Run(ctx, step.Import, items[0].ID, 0)
	if err != nil || dec.Next != "" {
		t.Fatalf("second delivery: %+v %v", dec, err)
	}
	if n := len(h.attempts(items[0].ID)); n != 1 {
		t.Fatalf("attempts after duplicate delivery: %d", n)
	}
	if c := h.hs.Counts(); c.Accounts != 1 || c.Groups != 1 {
		t.Fatalf("host objects: %+v", c)
	}
}
