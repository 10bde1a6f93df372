// Package demo runs the product's main job on embedded defaults: simulated providers and a
// simulated sub2api host on loopback, the all-in-one process (embedded queue, SQLite,
// worker, API), and a realistic batch submitted over the real HTTP API.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/api"
	"github.com/cn-relay-manager/cn-relay-manager/internal/apiclient"
	"github.com/cn-relay-manager/cn-relay-manager/internal/app"
	"github.com/cn-relay-manager/cn-relay-manager/internal/batch"
	"github.com/cn-relay-manager/cn-relay-manager/internal/config"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/hostsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/upstreamsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// Options control a demo run.
type Options struct {
	HostProfile string // simulated host profile (default 0.1.179)
	Mode        string // access mode (default self_service)
	Exit        bool   // exit after printing instead of serving until ctx ends
	JSON        bool   // print the summary as JSON
	ListenAddr  string // API address; a busy address falls back to a free port
	DataDir     string // where the fresh SQLite file goes (default a new temp dir)
	Out         io.Writer
	Progress    io.Writer // progress lines (default stderr)
	Log         *slog.Logger
	RedisAddr   string // use this Redis instead of the embedded one
	Rollback    bool   // roll the batch back at the end and show the host is back to its start
	DatabaseURL string // use this database (e.g. a postgres:// DSN) instead of a fresh SQLite file
}

// ItemSummary is one line of the result.
type ItemSummary struct {
	Name         string             `json:"name"`
	Status       string             `json:"status"`
	FailureClass string             `json:"failure_class"`
	Attempts     int                `json:"attempts"`
	Provider     string             `json:"provider"`
	BaseURL      string             `json:"normalized_url"`
	SmokeModel   string             `json:"smoke_model,omitempty"`
	Capability   map[string]any     `json:"capability,omitempty"`
	Corrections  []store.Correction `json:"corrections"`
	Warnings     []string           `json:"warnings,omitempty"`
	Message      string             `json:"message,omitempty"`
}

// Summary is what the demo prints.
type Summary struct {
	BatchID     string         `json:"batch_id"`
	Status      string         `json:"status"`
	HostProfile string         `json:"host_profile"`
	Mode        string         `json:"mode"`
	WallSeconds float64        `json:"wall_s"`
	Items       []ItemSummary  `json:"items"`
	HostObjects hostsim.Counts `json:"host_objects"`
	Reconcile   string         `json:"reconcile"`
	// Groups are the pooled host groups the batch's accounts joined (created or reused).
	Groups []store.BatchGroup `json:"groups"`
	// More is a second, smaller batch of keys for the same providers: its accounts join
	// the groups the first batch created, adding capacity to them.
	More *MoreSummary `json:"more_capacity,omitempty"`
	// Set with --rollback.
	Rollback           *store.Action   `json:"rollback,omitempty"`
	HostObjectsBefore  *hostsim.Counts `json:"host_objects_before,omitempty"`
	HostObjectsAfterRB *hostsim.Counts `json:"host_objects_after_rollback,omitempty"`
}

// MoreSummary is the demo's second batch.
type MoreSummary struct {
	BatchID     string             `json:"batch_id"`
	Status      string             `json:"status"`
	Items       []ItemSummary      `json:"items"`
	Groups      []store.BatchGroup `json:"groups"`
	HostObjects hostsim.Counts     `json:"host_objects"`
}

// demoItem is one input of the demo batch with what the simulators should do with it.
type demoItem struct {
	Name, Provider, Key, URLSuffix string
	Models                         []string
	Mode                           upstreamsim.KeyMode
	Host                           hostsim.Behavior
	Expect, ExpectClass            string
}

func demoItems() []demoItem {
	return []demoItem{
		{Name: "deepseek good key", Provider: "deepseek", Key: "sk-demo-deepseek-good-0001aaaa", Models: []string{"deepseek-flash"}, Mode: upstreamsim.KeyMode("ok"), Expect: store.ItemReady},
		{Name: "kimi first account test 403", Provider: "kimi", Key: "sk-demo-kimi-test403-0002bbbb", Models: []string{"kimi-k2.6"}, Mode: "ok",
			Host: hostsim.Behavior{TestWarmups: 1}, Expect: store.ItemReady},
		{Name: "glm warm-up 503", Provider: "glm", Key: "demo-glm-warm503.0003cccc", Models: []string{"glm-5.1"}, Mode: "ok",
			Host: hostsim.Behavior{ChatWarmup: 4 * time.Second}, Expect: store.ItemReady},
		{Name: "deepseek invalid key", Provider: "deepseek", Key: "sk-demo-deepseek-invalid-0004dddd", Models: []string{"deepseek-flash"}, Mode: "",
			Expect: store.ItemFailed, ExpectClass: "invalid_key"},
		{Name: "kimi misspelled models", Provider: "kimi", Key: "sk-demo-kimi-typos-0005eeee", Models: []string{"kimi-k2-6", "Kimi-K3 "}, Mode: "ok", Expect: store.ItemReady},
		{Name: "deepseek no quota", Provider: "deepseek", Key: "sk-demo-deepseek-broke-0006ffff", Models: []string{"deepseek-flash"}, Mode: "no_quota",
			Expect: store.ItemFailed, ExpectClass: "no_quota"},
		{Name: "qwen pasted endpoint URL", Provider: "qwen", Key: "sk-demo-qwen-pasted-0007gggg", URLSuffix: "/chat/completions", Models: []string{"qwen3.6-plus"}, Mode: "ok", Expect: store.ItemReady},
		{Name: "unknown relay", Provider: "openai_compatible", Key: "sk-demo-relay-0008hhhh", Mode: "ok", Expect: store.ItemReady},
	}
}

// moreItems is the second demo batch: more keys for providers the first batch pooled.
func moreItems() []demoItem {
	return []demoItem{
		{Name: "deepseek second key", Provider: "deepseek", Key: "sk-demo-deepseek-more-0009iiii", Models: []string{"deepseek-flash"}, Mode: "ok", Expect: store.ItemReady},
		{Name: "kimi second key", Provider: "kimi", Key: "sk-demo-kimi-more-0010jjjj", Models: []string{"kimi-k2.6"}, Mode: "ok", Expect: store.ItemReady},
	}
}

// Expected returns the outcome each demo item should reach, by name (for tests).
func Expected() map[string][2]string {
	out := map[string][2]string{}
	for _, d := range demoItems() {
		out[d.Name] = [2]string{d.Expect, d.ExpectClass}
	}
	return out
}

// Simulators are the demo's simulated providers and host, configured for the demo items.
type Simulators struct {
	Host     *hostsim.Server
	Upstream *upstreamsim.Server
	AdminKey string
}

// StartSimulators starts the simulated providers and a simulated host of profile on
// loopback, with the keys and warm-up behaviours of the demo items.
func StartSimulators(profile string, hostLatency time.Duration) (*Simulators, error) {
	up, err := upstreamsim.Start(upstreamsim.Options{})
	if err != nil {
		return nil, fmt.Errorf("start simulated providers: %w", err)
	}
	behaviour := map[string]hostsim.Behavior{}
	for _, d := range append(demoItems(), moreItems()...) {
		if d.Mode != "" {
			up.AddKey(d.Key, d.Mode)
		}
		behaviour[d.Key] = d.Host
	}
	adminKey := "admin-" + secret.RandomToken(32)
	hs, err := hostsim.Start(hostsim.Options{Profile: profile, AdminAPIKey: adminKey, Latency: hostLatency,
		Behavior: func(a hostsim.AccountView) hostsim.Behavior { return behaviour[a.APIKey] }})
	if err != nil {
		up.Close()
		return nil, fmt.Errorf("start simulated host: %w", err)
	}
	return &Simulators{Host: hs, Upstream: up, AdminKey: adminKey}, nil
}

// Close stops both simulators.
func (s *Simulators) Close() {
	s.Host.Close()
	s.Upstream.Close()
}

// Items returns the demo batch's items as the API takes them.
func (s *Simulators) Items() []batch.Item { return s.items(demoItems()) }

func (s *Simulators) items(items []demoItem) []batch.Item {
	var out []batch.Item
	for _, d := range items {
		it := batch.Item{Name: d.Name, BaseURL: s.Upstream.BaseURL(d.Provider) + d.URLSuffix, APIKey: d.Key, Models: d.Models}
		if d.Provider != "openai_compatible" {
			it.Provider = d.Provider
		}
		out = append(out, it)
	}
	return out
}

// Keys returns the upstream keys of the demo items (for secret-leak checks).
func Keys() []string {
	var out []string
	for _, d := range append(demoItems(), moreItems()...) {
		out = append(out, d.Key)
	}
	return out
}

// Run executes the demo and returns its summary.
func Run(ctx context.Context, o Options) (*Summary, error) {
	if o.HostProfile == "" {
		o.HostProfile = hostsim.Profile179
	}
	if o.Mode == "" {
		o.Mode = "self_service"
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Progress == nil {
		o.Progress = os.Stderr
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.DataDir == "" {
		dir, err := os.MkdirTemp("", "crm-demo-")
		if err != nil {
			return nil, err
		}
		o.DataDir = dir
		if o.Exit {
			defer os.RemoveAll(dir)
		}
	}
	sims, err := StartSimulators(o.HostProfile, 0)
	if err != nil {
		return nil, err
	}
	defer sims.Close()
	hs, up, adminKey := sims.Host, sims.Upstream, sims.AdminKey

	token := secret.RandomToken(24)
	cfg := config.Defaults()
	cfg.DataDir = o.DataDir
	cfg.DatabaseURL = filepath.Join(o.DataDir, "demo.db")
	if o.DatabaseURL != "" {
		cfg.DatabaseURL = o.DatabaseURL
	}
	cfg.APIToken = token
	cfg.ListenAddr = o.ListenAddr
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "127.0.0.1:8080"
	}
	cfg.WindowDeadline = 45 * time.Second
	cfg.WindowSchedule = []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 5 * time.Second}
	cfg.SweepInterval = 5 * time.Second
	cfg.RedisAddr = o.RedisAddr
	cfg.AllowPrivateUpstreams = true // the simulated providers listen on loopback
	a, err := app.New(ctx, cfg, o.Log)
	if err != nil {
		return nil, err
	}
	defer a.Close()

	wctx, stopWorker := context.WithCancel(ctx)
	workerDone := make(chan error, 1)
	go func() { workerDone <- a.RunWorker(wctx) }()
	defer func() { stopWorker(); <-workerDone }()

	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(o.Progress, "%s is busy; serving the API on %s instead\n", cfg.ListenAddr, ln.Addr())
	}
	web, closer := a.HTTPApp(token)
	defer closer.Close()
	go web.Listener(api.LingerListener(ln)) //nolint:errcheck
	defer web.Shutdown()                    //nolint:errcheck
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(o.Progress, "cn-relay-manager demo: API %s  (token, shown once: %s)\n", base, token)
	fmt.Fprintf(o.Progress, "simulated host %s (profile %s), simulated providers %s\n", hs.URL(), o.HostProfile, up.URL())

	cl := &client{Client: apiclient.New(base, token)}
	cl.HTTP.Timeout = 30 * time.Second
	var host store.Host
	if _, err := cl.RegisterHost(ctx, apiclient.HostRequest{Name: "demo-host", AdminURL: hs.URL(), AdminAPIKey: adminKey}, &host); err != nil {
		return nil, fmt.Errorf("register host: %w", err)
	}
	reqItems := sims.Items()
	var sub struct {
		Batch store.Batch `json:"batch"`
	}
	before := hs.Counts()
	started := time.Now()
	if _, err := cl.SubmitBatch(ctx, batch.Request{HostID: host.ID, Name: "demo", Mode: o.Mode, Items: reqItems}, &sub); err != nil {
		return nil, fmt.Errorf("submit batch: %w", err)
	}
	fmt.Fprintf(o.Progress, "submitted batch %s with %d items (mode %s)\n", sub.Batch.ID, len(reqItems), o.Mode)

	status, err := cl.waitBatch(ctx, sub.Batch.ID, o.Progress)
	if err != nil {
		return nil, err
	}
	sum, err := cl.summary(ctx, sub.Batch.ID, status)
	if err != nil {
		return nil, err
	}
	sum.HostProfile, sum.Mode, sum.WallSeconds = o.HostProfile, o.Mode, time.Since(started).Seconds()
	sum.HostObjects = hs.Counts()
	if sum.Groups, err = cl.groups(ctx, sub.Batch.ID); err != nil {
		return nil, err
	}
	if sum.Reconcile, err = cl.reconcile(ctx, sub.Batch.ID); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Progress, "reconcile: %s\n", sum.Reconcile)

	// More capacity: a second batch for providers the first one pooled joins their groups.
	var more struct {
		Batch store.Batch `json:"batch"`
	}
	if _, err := cl.SubmitBatch(ctx, batch.Request{HostID: host.ID, Name: "demo: more capacity", Mode: o.Mode,
		Items: sims.items(moreItems())}, &more); err != nil {
		return nil, fmt.Errorf("submit second batch: %w", err)
	}
	fmt.Fprintf(o.Progress, "submitted batch %s with %d more keys for the same providers\n", more.Batch.ID, len(moreItems()))
	moreStatus, err := cl.waitBatch(ctx, more.Batch.ID, o.Progress)
	if err != nil {
		return nil, err
	}
	m, err := cl.summary(ctx, more.Batch.ID, moreStatus)
	if err != nil {
		return nil, err
	}
	sum.More = &MoreSummary{BatchID: more.Batch.ID, Status: moreStatus, Items: m.Items, HostObjects: hs.Counts()}
	if sum.More.Groups, err = cl.groups(ctx, more.Batch.ID); err != nil {
		return nil, err
	}
	if o.Rollback {
		// Newest first: the first batch's groups are kept while the second uses them.
		if _, err := cl.rollback(ctx, more.Batch.ID); err != nil {
			return nil, err
		}
		act, err := cl.rollback(ctx, sub.Batch.ID)
		if err != nil {
			return nil, err
		}
		after := hs.Counts()
		sum.Rollback, sum.HostObjectsBefore, sum.HostObjectsAfterRB = act, &before, &after
		fmt.Fprintf(o.Progress, "rollback of both batches: %s; host objects before the batches %+v, after rollback %+v\n", act.Message, before, after)
	}
	if o.JSON {
		enc := json.NewEncoder(o.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(sum); err != nil {
			return nil, err
		}
	} else {
		printTable(o.Out, sum)
	}
	if !o.Exit {
		fmt.Fprintf(o.Progress, "still serving on %s: pages at %s/batches/%s (log in with the token), queue at %s/monitoring; press Ctrl-C to stop\n", base, base, sum.BatchID, base)
		<-ctx.Done()
	}
	return sum, nil
}

func printTable(w io.Writer, s *Summary) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "batch %s: %s (host profile %s, mode %s, %.1fs)\n", s.BatchID, s.Status, s.HostProfile, s.Mode, s.WallSeconds)
	fmt.Fprintln(tw, "ITEM\tPROVIDER\tSTATE\tFAILURE\tATTEMPTS\tMODEL CORRECTIONS")
	for _, it := range s.Items {
		var corr, chosen []string
		for _, c := range it.Corrections {
			switch {
			case c.Method == "default":
				chosen = append(chosen, c.Resolved)
			case c.Requested != c.Resolved || c.Method != "exact":
				corr = append(corr, fmt.Sprintf("%q→%s (%s)", c.Requested, c.Resolved, c.Method))
			}
		}
		if len(chosen) > 0 {
			corr = append(corr, "chosen: "+strings.Join(chosen, ", "))
		}
		fc := it.FailureClass
		if fc == "" {
			fc = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", it.Name, it.Provider, it.Status, fc, it.Attempts, strings.Join(corr, ", "))
	}
	tw.Flush()
	fmt.Fprintf(w, "groups: %s\n", groupsLine(s.Groups))
	fmt.Fprintf(w, "reconcile: %s\n", s.Reconcile)
	if m := s.More; m != nil {
		ready := 0
		for _, it := range m.Items {
			if it.Status == store.ItemReady {
				ready++
			}
		}
		fmt.Fprintf(w, "more capacity: batch %s, %d of %d keys ready, groups: %s; the host holds %d groups and %d end-user keys for %d accounts\n",
			m.BatchID, ready, len(m.Items), groupsLine(m.Groups), m.HostObjects.Groups, m.HostObjects.Keys, m.HostObjects.Accounts)
	}
	if s.Rollback != nil {
		fmt.Fprintf(w, "rollback of both batches: %s (host objects before the batches: %+v, after rollback: %+v)\n", s.Rollback.Message, *s.HostObjectsBefore, *s.HostObjectsAfterRB)
	}
}

// groupsLine is "deepseek (create, 3 account(s), 1 ready), …".
func groupsLine(gs []store.BatchGroup) string {
	var parts []string
	for _, g := range gs {
		parts = append(parts, fmt.Sprintf("%s (%s, %d account(s), %d ready)", g.Name, g.Action, g.Items, g.Ready))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// client is the demo's use of the API client: follow a batch, summarise it, reconcile
// and roll it back, each waiting with apiclient's poll helper.
type client struct{ *apiclient.Client }

func (c *client) waitBatch(ctx context.Context, id string, progress io.Writer) (string, error) {
	last, status := "", ""
	_, err := c.WaitBatch(ctx, id, 500*time.Millisecond, 3*time.Minute, func(b apiclient.BatchState, _ json.RawMessage) {
		if line := progressLine(b.Status, b.ItemCount, b.Counts); line != last {
			fmt.Fprintln(progress, line)
			last = line
		}
		status = b.Status
	})
	if errors.Is(err, apiclient.ErrTimeout) {
		return "", errors.New("batch did not finish within 3 minutes")
	}
	return status, err
}

func progressLine(status string, total int, counts map[string]int) string {
	done := 0
	for st, n := range counts {
		if store.IsTerminal(st) {
			done += n
		}
	}
	var parts []string
	for _, st := range []string{store.ItemSubmitted, store.ItemProbing, store.ItemImporting, store.ItemConfirming, store.ItemClosingAccess,
		store.ItemVerifying, store.ItemReady, store.ItemReadyWithWarnings, store.ItemFailed, store.ItemSkipped, store.ItemCancelled} {
		if counts[st] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", st, counts[st]))
		}
	}
	return fmt.Sprintf("[%d/%d] %s  %s", done, total, status, strings.Join(parts, " "))
}

func (c *client) summary(ctx context.Context, id, status string) (*Summary, error) {
	var page struct {
		Items []store.Item `json:"items"`
	}
	if _, err := c.ListItems(ctx, id, 1, 1000, &page); err != nil {
		return nil, err
	}
	s := &Summary{BatchID: id, Status: status}
	for _, it := range page.Items {
		s.Items = append(s.Items, ItemSummary{Name: it.Name, Status: it.Status, FailureClass: it.FailureClass, Attempts: it.AttemptCount,
			Provider: it.Provider, BaseURL: it.NormalizedURL, SmokeModel: it.SmokeModel, Capability: it.Capability,
			Corrections: it.Corrections, Warnings: it.Warnings, Message: it.FailureMessage})
	}
	return s, nil
}

func (c *client) groups(ctx context.Context, batchID string) ([]store.BatchGroup, error) {
	var b struct {
		Groups []store.BatchGroup `json:"groups"`
	}
	if _, err := c.GetBatch(ctx, batchID, &b); err != nil {
		return nil, err
	}
	return b.Groups, nil
}

func (c *client) reconcile(ctx context.Context, batchID string) (string, error) {
	var run store.ReconcileRun
	if _, err := c.BatchOp(ctx, batchID, apiclient.OpReconcile, &run); err != nil {
		return "", fmt.Errorf("reconcile: %w", err)
	}
	err := apiclient.Poll(ctx, 300*time.Millisecond, time.Minute, func(ctx context.Context) (bool, error) {
		_, err := c.GetReconcileRun(ctx, run.ID, &run)
		return err == nil && (run.Status == store.RunCompleted || run.Status == store.RunFailed), err
	})
	if errors.Is(err, apiclient.ErrTimeout) {
		return "", errors.New("reconcile did not finish within a minute")
	}
	return run.Summary, err
}

func (c *client) rollback(ctx context.Context, batchID string) (*store.Action, error) {
	if _, err := c.BatchOp(ctx, batchID, apiclient.OpRollback, nil); err != nil {
		return nil, fmt.Errorf("rollback: %w", err)
	}
	var b store.Batch
	err := apiclient.Poll(ctx, 300*time.Millisecond, time.Minute, func(ctx context.Context) (bool, error) {
		b = store.Batch{}
		_, err := c.GetBatch(ctx, batchID, &b)
		return err == nil && b.LastAction.Kind == "rollback" && b.LastAction.Status != "", err
	})
	if errors.Is(err, apiclient.ErrTimeout) {
		return nil, errors.New("rollback did not finish within a minute")
	}
	if err != nil {
		return nil, err
	}
	return &b.LastAction, nil
}
