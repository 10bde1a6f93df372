package pipeline

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/catalog"
	"github.com/cn-relay-manager/cn-relay-manager/internal/host"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/hostsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/upstreamsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/step"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
	"github.com/cn-relay-manager/cn-relay-manager/internal/testpg"
	"github.com/cn-relay-manager/cn-relay-manager/internal/upstream"
)

// fakeClock lets the confirmation window pass instantly in tests: the engine and the
// simulated host read it, so a 20 s warm-up takes no real time.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type harness struct {
	t     testing.TB
	clock *fakeClock
	store *store.Store
	box   *secret.Box
	eng   *Engine
	hs    *hostsim.Server
	up    *upstreamsim.Server
	host  *store.Host
	// wrap, when set, wraps the host client (fault injection).
	wrap func(HostClient) HostClient
}

type harnessOpts struct {
	profile  string
	behavior func(hostsim.AccountView) hostsim.Behavior
	window   time.Duration
	schedule []time.Duration
	host     func(*hostsim.Options) // further simulated-host settings
	latency  time.Duration          // added by the simulated host to every request
}

func newHarness(t testing.TB, o harnessOpts) *harness {
	t.Helper()
	if o.profile == "" {
		o.profile = hostsim.Profile179
	}
	clock := &fakeClock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	up, err := upstreamsim.Start(upstreamsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.Close)
	adminKey := "admin-" + secret.RandomToken(32)
	hopts := hostsim.Options{Profile: o.profile, AdminAPIKey: adminKey, Behavior: o.behavior, Now: clock.Now, Latency: o.latency}
	if o.host != nil {
		o.host(&hopts)
	}
	hs, err := hostsim.Start(hopts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hs.Close)
	dsn := filepath.Join(t.TempDir(), "p.db")
	if os.Getenv("CRM_TEST_STORE") == "postgres" {
		dsn = testpg.Start(t) // make test runs this package on PostgreSQL too
	}
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	box, _ := secret.NewBox("pipeline-test-master-key")
	if o.window == 0 {
		o.window = 5 * time.Minute
	}
	if o.schedule == nil {
		o.schedule = []time.Duration{2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, 60 * time.Second}
	}
	h := &harness{t: t, clock: clock, store: st, box: box, hs: hs, up: up}
	cat := catalog.Default()
	h.eng = &Engine{Store: st, Box: box, Catalog: cat, Prober: upstream.NewProber(upstream.Options{Catalog: cat}), Now: clock.Now,
		Settings: Settings{ManagedUserEmail: "crm-managed@example.com", TopUpAmount: 10, ValidityDays: 30,
			WindowDeadline: o.window, WindowSchedule: o.schedule, MaxRetries: 3, RetryBase: time.Second},
		NewHostClient: func(_ *store.Host, cfg host.Config) HostClient {
			var c HostClient = host.New(cfg)
			if h.wrap != nil {
				c = h.wrap(c)
			}
			return c
		}}
	sealed, _ := box.Seal(adminKey)
	h.host = &store.Host{Name: "sim", AdminURL: hs.URL(), PublicURL: hs.URL(), AuthKind: "api_key", AdminKeyEnc: sealed}
	if err := h.eng.ProbeHost(context.Background(), h.host); err != nil || h.host.Status != HostOK {
		t.Fatalf("probe host: %v %s %s", err, h.host.Status, h.host.StatusMessage)
	}
	if err := st.CreateHost(context.Background(), h.host); err != nil {
		t.Fatal(err)
	}
	return h
}

type itemSpec struct {
	provider string
	key      string
	mode     upstreamsim.KeyMode
	models   []string
}

// submit creates a batch of items directly in the store, one group per item (as batches
// stored before target groups existed).
func (h *harness) submit(mode string, specs ...itemSpec) (*store.Batch, []*store.Item) {
	h.t.Helper()
	return h.submitWith(store.BatchOptions{}, mode, specs...)
}

// submitWith creates a batch with options (target group, account settings).
func (h *harness) submitWith(opts store.BatchOptions, mode string, specs ...itemSpec) (*store.Batch, []*store.Item) {
	h.t.Helper()
	return h.submitBatch(&store.Batch{HostID: h.host.ID, Mode: mode, Options: opts}, specs...)
}

// submitBatch creates batch b (host, mode, options, dry run as set) with the items.
func (h *harness) submitBatch(b *store.Batch, specs ...itemSpec) (*store.Batch, []*store.Item) {
	h.t.Helper()
	var items []*store.Item
	for _, s := range specs {
		if s.mode != "" {
			h.up.AddKey(s.key, s.mode)
		}
		sealed, _ := h.box.Seal(s.key)
		items = append(items, &store.Item{Name: s.key, BaseURL: h.up.BaseURL(s.provider), ProviderHint: s.provider, APIKeyEnc: sealed,
			KeyMasked: secret.Mask(s.key), KeyFingerprint: h.box.Fingerprint(s.key), RequestedModels: s.models, Step: step.Import})
	}
	if err := h.store.CreateBatch(context.Background(), b, items); err != nil {
		h.t.Fatal(err)
	}
	return b, items
}

// drive runs an item's steps synchronously, advancing the fake clock by each delay,
// until no step is left; it returns the final item.
func (h *harness) drive(id string) *store.Item {
	h.t.Helper()
	ctx := context.Background()
	it, err := h.store.GetItem(ctx, id)
	if err != nil {
		h.t.Fatal(err)
	}
	step, seq := it.Step, it.Seq
	for i := 0; i < 500 && step != ""; i++ {
		dec, err := h.eng.Run(ctx, step, id, seq)
		if err != nil {
			h.t.Fatalf("run %s: %v", step, err)
		}
		h.clock.Advance(dec.Delay)
		step, seq = dec.Next, dec.Seq
	}
	it, _ = h.store.GetItem(ctx, id)
	return it
}

func (h *harness) attempts(id string) []store.Attempt {
	atts, err := h.store.ListAttempts(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return atts
}

func countOutcome(atts []store.Attempt, step, outcome string) int {
	n := 0
	for _, a := range atts {
		if a.Step == step && a.Outcome == outcome {
			n++
		}
	}
	return n
}

var _ = slog.New(slog.NewTextHandler(io.Discard, nil))
