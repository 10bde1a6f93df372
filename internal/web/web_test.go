package web

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/cn-relay-manager/cn-relay-manager/internal/batch"
	"github.com/cn-relay-manager/cn-relay-manager/internal/catalog"
	"github.com/cn-relay-manager/cn-relay-manager/internal/hostreg"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

const testToken = "web-test-token-0123456789"

type fakeActions struct {
	mu    sync.Mutex
	calls map[string][]string
	// svc submits through the real batch service (validation included) with a queue
	// that runs nothing.
	svc *batch.Service
}

func (f *fakeActions) Submit(ctx context.Context, req batch.Request) (*batch.Submitted, error) {
	f.rec("submit", req.HostID)
	return f.svc.Submit(ctx, req)
}

// idleQueue enqueues nothing: submitted items stay submitted.
type idleQueue struct{}

func (idleQueue) EnqueueItems(_ context.Context, items []*store.Item) int     { return len(items) }
func (idleQueue) EnqueueRollback(context.Context, string) error               { return nil }
func (idleQueue) EnqueueReconcile(context.Context, *store.ReconcileRun) error { return nil }
func (idleQueue) EnqueueRepair(context.Context, *store.ReconcileRun) error    { return nil }

// acceptingProber answers like a host that accepts one admin key; a URL with "down"
// does not answer.
type acceptingProber struct{ box *secret.Box }

func (p acceptingProber) ProbeHost(_ context.Context, h *store.Host) error {
	if strings.Contains(h.AdminURL, "down") {
		return errors.New("dial tcp: connection refused")
	}
	k, _ := p.box.Open(h.AdminKeyEnc)
	h.Version, h.Profile, h.Warnings, h.Flags = "0.1.179", "0.1.179", []string{}, map[string]bool{"compliance_gate": false}
	if k == goodAdminKey {
		h.Status, h.StatusMessage = "ok", ""
	} else {
		h.Status, h.StatusMessage = "auth_failed", "the host refused the admin credentials (UNAUTHORIZED)"
	}
	return nil
}

const goodAdminKey = "good-admin-key-0123456789abcdef"

func (f *fakeActions) rec(name, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string][]string{}
	}
	f.calls[name] = append(f.calls[name], id)
}

func (f *fakeActions) n(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls[name])
}

func (f *fakeActions) Retry(_ context.Context, id string) (int, error) {
	f.rec("retry", id)
	return 2, nil
}
func (f *fakeActions) Cancel(_ context.Context, id string) (int, error) {
	f.rec("cancel", id)
	return 1, nil
}
func (f *fakeActions) Rollback(_ context.Context, id string) error {
	f.rec("rollback", id)
	return nil
}
func (f *fakeActions) Reconcile(_ context.Context, id string) (*store.ReconcileRun, error) {
	f.rec("reconcile", id)
	return &store.ReconcileRun{ID: "run-" + id, BatchID: id, Status: "queued"}, nil
}
func (f *fakeActions) ReconcileHost(_ context.Context, id string) (*store.ReconcileRun, error) {
	f.rec("hostreconcile", id)
	return &store.ReconcileRun{ID: "run-" + id, HostID: id, Status: "queued"}, nil
}
func (f *fakeActions) ImportDryRun(_ context.Context, id string) (string, error) {
	f.rec("import", id)
	return "new-batch-id", nil
}

type fixture struct {
	app     *fiber.App
	st      *store.Store
	box     *secret.Box
	acts    *fakeActions
	host    *store.Host
	done    *store.Batch // finished batch with corrections, failures, ledger, reconcile run
	run     *store.Batch // running batch
	items   []*store.Item
	monitor int
}

func setup(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "web.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	box, _ := secret.NewBox("web-test-master-key-000000")
	f := &fixture{st: st, box: box, acts: &fakeActions{svc: &batch.Service{Store: st, Queue: idleQueue{}, Box: box, Catalog: catalog.Default()}}}
	now := time.Now().UTC()
	f.host = &store.Host{Name: "prod-host", AdminURL: "http://admin.example", PublicURL: "http://pub.example", AuthKind: "api_key",
		AdminKeyEnc: "v1:SEALED-ADMIN-KEY", AdminKeyMasked: "admin-...7890", Version: "0.1.179", Profile: "v0.1.179",
		Status: "compliance_required", StatusMessage: "accept the terms first", Warnings: []string{"old version"},
		Flags: map[string]bool{"account_test_trusted": true}, ProbedAt: &now}
	if err := st.CreateHost(ctx, f.host); err != nil {
		t.Fatal(err)
	}
	f.done = &store.Batch{HostID: f.host.ID, Name: "june-keys", Mode: "self_service",
		Options: store.BatchOptions{WindowDeadlineS: 300, WindowScheduleS: []float64{2, 5}}}
	f.items = []*store.Item{
		{Name: "kimi-main", BaseURL: "https://api.moonshot.cn", APIKeyEnc: "v1:SEALED-UPSTREAM", KeyMasked: "sk-abc...wxyz", KeyFingerprint: "fp1", RequestedModels: []string{"kimi-k2-6"}},
		{Name: "deepseek-<script>alert(1)</script>", BaseURL: "https://api.deepseek.com", APIKeyEnc: "v1:SEALED2", KeyMasked: "sk-def...1234", KeyFingerprint: "fp2", RequestedModels: []string{"deepseek-chat"}},
	}
	if err := st.CreateBatch(ctx, f.done, f.items); err != nil {
		t.Fatal(err)
	}
	// Item 0: ready, with a separator correction and capability profile.
	it0, _ := st.GetItem(ctx, f.items[0].ID)
	it0.Status, it0.Provider, it0.NormalizedURL = store.ItemReady, "kimi", "https://api.moonshot.cn/v1"
	it0.Corrections = []store.Correction{{Requested: "kimi-k2-6", Resolved: "kimi-k2.6", Method: "separator"}}
	it0.Models = []string{"kimi-k2.6"}
	it0.Capability = map[string]any{"chat": true, "stream": true, "tools": false, "responses": false, "anthropic": true, "models_listed": true}
	it0.AccountStatus, it0.AccessStatus = "active", "proven"
	it0.Seq++
	if err := st.CompleteStep(ctx, it0, it0.Seq-1, &store.Attempt{Step: "import", Seq: 0, Number: 1, Outcome: store.OutcomeOK,
		Message: "group 7 and account 9 ready", StartedAt: now, FinishedAt: now.Add(120 * time.Millisecond),
		Evidence: []store.Exchange{{Target: "upstream", Method: "GET", Path: "/v1/models", Status: 200, LatencyMS: 42, Preview: `{"data":[{"id":"kimi-k2.6"}]}`}}}); err != nil {
		t.Fatal(err)
	}
	// Item 1: failed with invalid_key and the evidence behind it.
	it1, _ := st.GetItem(ctx, f.items[1].ID)
	it1.Status, it1.Provider, it1.FailureClass, it1.FailureMessage = store.ItemFailed, "deepseek", "invalid_key", "the upstream refused the key"
	it1.Seq++
	if err := st.CompleteStep(ctx, it1, it1.Seq-1, &store.Attempt{Step: "import", Seq: 0, Number: 1, Outcome: store.OutcomeFailed,
		FailureClass: "invalid_key", Message: "401 from upstream", StartedAt: now, FinishedAt: now,
		Evidence: []store.Exchange{{Target: "upstream", Method: "GET", Path: "/v1/models", Status: 401, LatencyMS: 17, Preview: `{"error":{"code":"invalid_api_key"}}`}}}); err != nil {
		t.Fatal(err)
	}
	// Ledger: one created group, one intent.
	r, err := st.EnsureIntent(ctx, &store.Resource{HostID: f.host.ID, BatchID: f.done.ID, ItemID: f.items[0].ID, Type: store.TypeGroup, Name: "crm-group-june-0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.MarkCreated(ctx, r, "77", store.ResourceCreated); err != nil {
		t.Fatal(err)
	}
	// A reconcile run with a finding.
	run := &store.ReconcileRun{HostID: f.host.ID, BatchID: f.done.ID}
	if err := st.CreateReconcileRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	run.Status, run.Summary = store.RunCompleted, "1 missing"
	run.Findings = []store.Finding{{Kind: "missing", ResourceType: "account", HostResourceID: "9", Name: "crm-account-june-0", Detail: "gone from host"}}
	if err := st.FinishReconcileRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	// A second, running batch.
	f.run = &store.Batch{HostID: f.host.ID, Name: "running-one", Mode: "subscription", DryRun: true}
	if err := st.CreateBatch(ctx, f.run, []*store.Item{{Name: "glm", BaseURL: "https://open.bigmodel.cn", KeyMasked: "x", KeyFingerprint: "fp3"}}); err != nil {
		t.Fatal(err)
	}
	ri, _, _ := st.ListItems(ctx, f.run.ID, 0, 0)
	ri[0].Status = store.ItemProbing
	ri[0].Seq++
	if err := st.CompleteStep(ctx, &ri[0], 0, nil); err != nil {
		t.Fatal(err)
	}

	h := &Handler{Store: st, Actions: f.acts, Hosts: &hostreg.Service{Store: st, Box: box, Prober: acceptingProber{box}},
		Token: testToken, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	f.app = fiber.New()
	h.Mount(f.app)
	f.app.All("/monitoring/*", h.Protect, func(c *fiber.Ctx) error { f.monitor++; return c.SendString("asynqmon") })
	return f
}

type resp struct {
	code int
	body string
	hdr  http.Header
	raw  *http.Response
}

func (f *fixture) do(t *testing.T, method, path string, form url.Values, hdr map[string]string) resp {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := f.app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	return resp{code: res.StatusCode, body: string(b), hdr: res.Header, raw: res}
}

func (f *fixture) login(t *testing.T) string {
	t.Helper()
	r := f.do(t, "POST", "/login", url.Values{"token": {testToken}, "next": {"/hosts"}}, nil)
	if r.code != fiber.StatusSeeOther || r.hdr.Get("Location") != "/hosts" {
		t.Fatalf("login: %d %s", r.code, r.hdr.Get("Location"))
	}
	for _, c := range r.raw.Cookies() {
		if c.Name == SessionCookie {
			return c.Name + "=" + c.Value
		}
	}
	t.Fatal("no session cookie")
	return ""
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no csrf field in page")
	}
	return m[1]
}

func TestUnauthenticatedRedirects(t *testing.T) {
	f := setup(t)
	for _, p := range []string{"/batches", "/batches/" + f.done.ID, "/hosts", "/hosts/" + f.host.ID} {
		r := f.do(t, "GET", p, nil, nil)
		if r.code != fiber.StatusSeeOther || !strings.HasPrefix(r.hdr.Get("Location"), "/login?next=") {
			t.Fatalf("%s: %d %q", p, r.code, r.hdr.Get("Location"))
		}
	}
	if r := f.do(t, "GET", "/", nil, nil); r.hdr.Get("Location") != "/batches" {
		t.Fatalf("/ → %q", r.hdr.Get("Location"))
	}
	// The POST actions refuse without a session and call nothing.
	if r := f.do(t, "POST", "/batches/"+f.done.ID+"/retry", url.Values{}, nil); r.code != fiber.StatusUnauthorized {
		t.Fatalf("anonymous POST: %d", r.code)
	}
	if f.acts.n("retry") != 0 {
		t.Fatal("action called anonymously")
	}
}

func TestLogin(t *testing.T) {
	f := setup(t)
	if r := f.do(t, "GET", "/login?next=/batches", nil, nil); r.code != 200 || !strings.Contains(r.body, `name="token"`) {
		t.Fatalf("login form: %d", r.code)
	}
	r := f.do(t, "POST", "/login", url.Values{"token": {"wrong"}}, nil)
	if r.code != fiber.StatusUnauthorized || !strings.Contains(r.body, "not valid") || len(r.raw.Cookies()) != 0 && r.raw.Cookies()[0].Name == SessionCookie {
		t.Fatalf("wrong token: %d %v", r.code, r.raw.Cookies())
	}
	r = f.do(t, "POST", "/login", url.Values{"token": {testToken}, "next": {"//evil.example/x"}}, nil)
	if r.code != fiber.StatusSeeOther || r.hdr.Get("Location") != "/batches" {
		t.Fatalf("login with open redirect: %d %q", r.code, r.hdr.Get("Location"))
	}
	var sc *http.Cookie
	for _, c := range r.raw.Cookies() {
		if c.Name == SessionCookie {
			sc = c
		}
	}
	if sc == nil || !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode || sc.Path != "/" || strings.Contains(sc.Value, testToken) {
		t.Fatalf("session cookie: %+v", sc)
	}
	if !strings.Contains(r.hdr.Get("Set-Cookie"), "HttpOnly") || !strings.Contains(strings.ToLower(r.hdr.Get("Set-Cookie")), "samesite=lax") {
		t.Fatalf("Set-Cookie: %s", r.hdr.Get("Set-Cookie"))
	}
	// A tampered cookie is refused.
	bad := f.do(t, "GET", "/batches", nil, map[string]string{"Cookie": SessionCookie + "=" + sc.Value + "x"})
	if bad.code != fiber.StatusSeeOther {
		t.Fatalf("tampered cookie accepted: %d", bad.code)
	}
	// Logout revokes the session.
	cookie := SessionCookie + "=" + sc.Value
	page := f.do(t, "GET", "/batches", nil, map[string]string{"Cookie": cookie})
	if page.code != 200 {
		t.Fatalf("batches with session: %d", page.code)
	}
	out := f.do(t, "POST", "/logout", url.Values{"csrf": {csrfOf(t, page.body)}}, map[string]string{"Cookie": cookie})
	if out.code != fiber.StatusSeeOther {
		t.Fatalf("logout: %d", out.code)
	}
	if r := f.do(t, "GET", "/batches", nil, map[string]string{"Cookie": cookie}); r.code != fiber.StatusSeeOther {
		t.Fatalf("session still valid after logout: %d", r.code)
	}
}

func TestLoginThrottle(t *testing.T) {
	f := setup(t)
	for i := 0; i < loginMaxFails; i++ {
		f.do(t, "POST", "/login", url.Values{"token": {"nope"}}, nil)
	}
	if r := f.do(t, "POST", "/login", url.Values{"token": {testToken}}, nil); r.code != fiber.StatusTooManyRequests {
		t.Fatalf("after %d failures: %d", loginMaxFails, r.code)
	}
}

func TestBatchPages(t *testing.T) {
	f := setup(t)
	ck := map[string]string{"Cookie": f.login(t), "Accept-Language": "en"}

	list := f.do(t, "GET", "/batches", nil, ck)
	for _, want := range []string{"june-keys", "running-one", "prod-host", "ready 1", "failed 1", "partially succeeded", "dry run", `http-equiv="refresh"`} {
		if !strings.Contains(list.body, want) {
			t.Errorf("batch list lacks %q", want)
		}
	}
	filtered := f.do(t, "GET", "/batches?status=running&host="+f.host.ID, nil, ck)
	if !strings.Contains(filtered.body, "running-one") || strings.Contains(filtered.body, "june-keys") {
		t.Error("status filter not applied")
	}

	d := f.do(t, "GET", "/batches/"+f.done.ID, nil, ck)
	if d.code != 200 {
		t.Fatalf("detail: %d %s", d.code, d.body)
	}
	for _, want := range []string{
		"kimi-main", "kimi-k2-6", "kimi-k2.6 (separator)", "https://api.moonshot.cn/v1", "invalid_key", "the upstream refused the key",
		"invalid_api_key", "ready", "failed", "active", "proven", "sk-abc...wxyz", "crm-group-june-0", "gone from host", "crm-account-june-0",
		"Retry failed items", "/batches/" + f.done.ID + "/rollback", "cap-on", "deepseek-&lt;script&gt;",
	} {
		if !strings.Contains(d.body, want) {
			t.Errorf("batch detail lacks %q", want)
		}
	}
	for _, bad := range []string{"<script>alert", "SEALED", `http-equiv="refresh"`} {
		if strings.Contains(d.body, bad) {
			t.Errorf("batch detail contains %q", bad)
		}
	}
	if csp := d.hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP: %q", csp)
	}

	rd := f.do(t, "GET", "/batches/"+f.run.ID, nil, ck)
	if !strings.Contains(rd.body, `<meta http-equiv="refresh" content="3">`) || !strings.Contains(rd.body, "Import for real") {
		t.Error("running dry-run batch: no refresh or no import action")
	}

	it := f.do(t, "GET", "/batches/"+f.done.ID+"/items/"+f.items[1].ID, nil, ck)
	for _, want := range []string{"401 from upstream", "invalid_key", "/v1/models", "17 ms", "invalid_api_key", "<details>"} {
		if !strings.Contains(it.body, want) {
			t.Errorf("item page lacks %q", want)
		}
	}
	if r := f.do(t, "GET", "/batches/"+f.run.ID+"/items/"+f.items[1].ID, nil, ck); r.code != 404 {
		t.Errorf("item of another batch: %d", r.code)
	}
	if r := f.do(t, "GET", "/batches/nope", nil, ck); r.code != 404 {
		t.Errorf("missing batch: %d", r.code)
	}

	hl := f.do(t, "GET", "/hosts", nil, ck)
	if !strings.Contains(hl.body, "prod-host") || !strings.Contains(hl.body, "compliance required") {
		t.Error("host list")
	}
	hd := f.do(t, "GET", "/hosts/"+f.host.ID, nil, ck)
	for _, want := range []string{"0.1.179", "v0.1.179", "accept the terms first", "account_test_trusted", "old version", "crm-group-june-0", "gone from host", "june-keys", "admin-...7890"} {
		if !strings.Contains(hd.body, want) {
			t.Errorf("host page lacks %q", want)
		}
	}
	if strings.Contains(hd.body, "SEALED") {
		t.Error("host page shows a sealed secret")
	}
}

func TestCSRFAndActions(t *testing.T) {
	f := setup(t)
	cookie := f.login(t)
	ck := map[string]string{"Cookie": cookie}
	page := f.do(t, "GET", "/batches/"+f.done.ID, nil, ck)
	tok := csrfOf(t, page.body)
	base := "/batches/" + f.done.ID

	if r := f.do(t, "POST", base+"/retry", url.Values{}, ck); r.code != fiber.StatusForbidden {
		t.Fatalf("no csrf: %d", r.code)
	}
	if r := f.do(t, "POST", base+"/retry", url.Values{"csrf": {"forged"}}, ck); r.code != fiber.StatusForbidden {
		t.Fatalf("bad csrf: %d", r.code)
	}
	// Another session's token does not work here.
	other := f.login(t)
	otherPage := f.do(t, "GET", "/batches", nil, map[string]string{"Cookie": other})
	if r := f.do(t, "POST", base+"/retry", url.Values{"csrf": {csrfOf(t, otherPage.body)}}, ck); r.code != fiber.StatusForbidden {
		t.Fatalf("other session's csrf: %d", r.code)
	}
	// Bearer alone cannot submit forms.
	if r := f.do(t, "POST", base+"/retry", url.Values{}, map[string]string{"Authorization": "Bearer " + testToken}); r.code != fiber.StatusUnauthorized {
		t.Fatalf("bearer form post: %d", r.code)
	}
	if f.acts.n("retry") != 0 {
		t.Fatal("retry called without a valid CSRF token")
	}
	r := f.do(t, "POST", base+"/retry", url.Values{"csrf": {tok}}, ck)
	if r.code != fiber.StatusSeeOther || f.acts.n("retry") != 1 || r.hdr.Get("Location") != base+"?done=retry&n=2" {
		t.Fatalf("retry: %d %q calls=%d", r.code, r.hdr.Get("Location"), f.acts.n("retry"))
	}
	if done := f.do(t, "GET", r.hdr.Get("Location"), nil, ck); !strings.Contains(done.body, "2 failed items restarted") {
		t.Error("no flash after retry")
	}

	// Destructive: without confirm=yes it goes to the confirm page and calls nothing.
	r = f.do(t, "POST", base+"/rollback", url.Values{"csrf": {tok}}, ck)
	if r.code != fiber.StatusSeeOther || r.hdr.Get("Location") != base+"/rollback" || f.acts.n("rollback") != 0 {
		t.Fatalf("unconfirmed rollback: %d %q %d", r.code, r.hdr.Get("Location"), f.acts.n("rollback"))
	}
	conf := f.do(t, "GET", base+"/rollback", nil, ck)
	if !strings.Contains(conf.body, `name="confirm" value="yes"`) || !strings.Contains(conf.body, "cannot be undone") {
		t.Fatal("confirm page")
	}
	if r := f.do(t, "POST", base+"/rollback", url.Values{"confirm": {"yes"}}, ck); r.code != fiber.StatusForbidden || f.acts.n("rollback") != 0 {
		t.Fatalf("confirmed rollback without csrf: %d", r.code)
	}
	if r := f.do(t, "POST", base+"/rollback", url.Values{"csrf": {csrfOf(t, conf.body)}, "confirm": {"yes"}}, ck); r.code != fiber.StatusSeeOther || f.acts.n("rollback") != 1 {
		t.Fatalf("rollback: %d calls=%d", r.code, f.acts.n("rollback"))
	}
	if r := f.do(t, "POST", base+"/cancel", url.Values{"csrf": {tok}, "confirm": {"yes"}}, ck); r.code != fiber.StatusSeeOther || f.acts.n("cancel") != 1 {
		t.Fatalf("cancel: %d", r.code)
	}
	if r := f.do(t, "POST", base+"/reconcile", url.Values{"csrf": {tok}}, ck); r.code != fiber.StatusSeeOther || f.acts.n("reconcile") != 1 {
		t.Fatalf("reconcile: %d", r.code)
	}
	r = f.do(t, "POST", "/batches/"+f.run.ID+"/import", url.Values{"csrf": {tok}, "confirm": {"yes"}}, ck)
	if r.code != fiber.StatusSeeOther || f.acts.n("import") != 1 || !strings.HasPrefix(r.hdr.Get("Location"), "/batches/new-batch-id?done=import") {
		t.Fatalf("import: %d %q", r.code, r.hdr.Get("Location"))
	}
	if r := f.do(t, "POST", "/hosts/"+f.host.ID+"/reconcile", url.Values{}, ck); r.code != fiber.StatusForbidden || f.acts.n("hostreconcile") != 0 {
		t.Fatalf("host reconcile without csrf: %d", r.code)
	}
	if r := f.do(t, "POST", "/hosts/"+f.host.ID+"/reconcile", url.Values{"csrf": {tok}}, ck); r.code != fiber.StatusSeeOther || f.acts.n("hostreconcile") != 1 {
		t.Fatalf("host reconcile: %d", r.code)
	}
	if r := f.do(t, "POST", "/batches/nope/retry", url.Values{"csrf": {tok}}, ck); r.code != 404 || f.acts.n("retry") != 1 {
		t.Fatalf("retry of a missing batch: %d", r.code)
	}
}

func TestChinese(t *testing.T) {
	f := setup(t)
	cookie := f.login(t)
	r := f.do(t, "GET", "/batches/"+f.done.ID+"?lang=zh", nil, map[string]string{"Cookie": cookie})
	for _, want := range []string{`lang="zh-CN"`, "批次", "条目", "就绪", "失败", "密钥无效", "kimi-k2.6 (分隔符)", "台账", "重试失败条目"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("zh page lacks %q", want)
		}
	}
	var lc *http.Cookie
	for _, c := range r.raw.Cookies() {
		if c.Name == LangCookie {
			lc = c
		}
	}
	if lc == nil || lc.Value != "zh" {
		t.Fatal("lang cookie not set")
	}
	// The cookie is remembered; Accept-Language is the default.
	if r := f.do(t, "GET", "/hosts", nil, map[string]string{"Cookie": cookie + "; lang=zh"}); !strings.Contains(r.body, "主机") {
		t.Error("lang cookie ignored")
	}
	if r := f.do(t, "GET", "/login", nil, map[string]string{"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}); !strings.Contains(r.body, "登录") {
		t.Error("Accept-Language zh ignored")
	}
	if r := f.do(t, "GET", "/login", nil, map[string]string{"Accept-Language": "en-US,en;q=0.9,zh;q=0.5"}); !strings.Contains(r.body, "Sign in") {
		t.Error("Accept-Language en ignored")
	}
}

func TestProtect(t *testing.T) {
	f := setup(t)
	if r := f.do(t, "GET", "/monitoring/", nil, map[string]string{"Authorization": "Bearer " + testToken}); r.code != 200 {
		t.Fatalf("bearer: %d", r.code)
	}
	cookie := f.login(t)
	if r := f.do(t, "GET", "/monitoring/queues", nil, map[string]string{"Cookie": cookie}); r.code != 200 {
		t.Fatalf("session: %d", r.code)
	}
	if r := f.do(t, "POST", "/monitoring/api/queues/default:pause", nil, map[string]string{"Cookie": cookie, "Origin": "http://example.com", "Host": "example.com"}); r.code != 200 {
		t.Fatalf("same-origin session POST: %d", r.code)
	}
	if r := f.do(t, "POST", "/monitoring/api/queues/default:pause", nil, map[string]string{"Cookie": cookie, "Origin": "https://evil.example"}); r.code != fiber.StatusForbidden {
		t.Fatalf("cross-origin session POST: %d", r.code)
	}
	if f.monitor != 3 {
		t.Fatalf("monitor reached %d times, want 3", f.monitor)
	}
	r := f.do(t, "GET", "/monitoring/queues?x=1", nil, map[string]string{"Accept": "text/html,application/xhtml+xml"})
	if r.code != fiber.StatusSeeOther || r.hdr.Get("Location") != "/login?next="+url.QueryEscape("/monitoring/queues?x=1") {
		t.Fatalf("browser without session: %d %q", r.code, r.hdr.Get("Location"))
	}
	if r := f.do(t, "GET", "/monitoring/api/queues", nil, map[string]string{"Accept": "application/json"}); r.code != fiber.StatusUnauthorized {
		t.Fatalf("api without auth: %d", r.code)
	}
	if r := f.do(t, "GET", "/monitoring/api/queues", nil, map[string]string{"Authorization": "Bearer wrong"}); r.code != fiber.StatusUnauthorized {
		t.Fatalf("wrong bearer: %d", r.code)
	}
	if f.monitor != 3 {
		t.Fatal("monitor reached without auth")
	}
}

func TestEmptyTokenFailsClosed(t *testing.T) {
	f := setup(t)
	h := &Handler{Store: f.st, Actions: f.acts, Token: "", Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	app := fiber.New()
	h.Mount(app)
	req := httptest.NewRequest("POST", "/login", strings.NewReader("token="))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, _ := app.Test(req, -1)
	if res.StatusCode != fiber.StatusUnauthorized {
		t.Fatalf("empty token login: %d", res.StatusCode)
	}
	req = httptest.NewRequest("GET", "/batches", nil)
	req.Header.Set("Authorization", "Bearer ")
	res, _ = app.Test(req, -1)
	if res.StatusCode != fiber.StatusSeeOther {
		t.Fatalf("empty bearer: %d", res.StatusCode)
	}
}

func TestAcceptLanguage(t *testing.T) {
	for in, want := range map[string]string{"": "en", "zh-CN": "zh", "en;q=0.4, zh-TW;q=0.8": "zh", "fr, en;q=0.5": "en", "de": "en", "zh;q=0": "en"} {
		if got := fromAcceptLanguage(in); got != want {
			t.Errorf("%q → %s, want %s", in, got, want)
		}
	}
}

func TestDictionaryComplete(t *testing.T) {
	for k := range messages["en"] {
		if _, ok := messages["zh"][k]; !ok {
			t.Errorf("zh lacks %q", k)
		}
	}
	for k := range messages["zh"] {
		if _, ok := messages["en"][k]; !ok {
			t.Errorf("en lacks %q", k)
		}
	}
}

// A running reconcile shows its progress on the host and batch pages, which refresh while
// it runs; a skipped periodic slot shows as skipped with its reason.
func TestReconcileProgressOnPages(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	running := &store.ReconcileRun{HostID: f.host.ID, BatchID: f.done.ID}
	if err := f.st.CreateReconcileRun(ctx, running); err != nil {
		t.Fatal(err)
	}
	running.ObjectsChecked, running.ObjectsTotal = 400, 601
	if err := f.st.ReconcileProgress(ctx, running); err != nil {
		t.Fatal(err)
	}
	skipped := &store.ReconcileRun{HostID: f.host.ID, Slot: "202612062205", Status: store.RunSkipped,
		Summary: "skipped: reconcile run " + running.ID + " is still running"}
	if err := f.st.CreateReconcileRun(ctx, skipped); err != nil {
		t.Fatal(err)
	}
	ck := map[string]string{"Cookie": f.login(t)}
	for _, p := range []string{"/hosts/" + f.host.ID, "/batches/" + f.done.ID} {
		page := f.do(t, "GET", p, nil, ck)
		if page.code != 200 || !strings.Contains(page.body, "400 of 601 objects checked") || !strings.Contains(page.body, `http-equiv="refresh"`) {
			t.Errorf("%s: %d, progress or refresh missing", p, page.code)
		}
	}
	host := f.do(t, "GET", "/hosts/"+f.host.ID, nil, ck)
	if !strings.Contains(host.body, "skipped: reconcile run "+running.ID) {
		t.Error("host page lacks the skipped slot and its reason")
	}
}
