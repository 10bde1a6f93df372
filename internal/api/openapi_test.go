package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/gofiber/fiber/v2"

	"github.com/cn-relay-manager/cn-relay-manager/internal/batch"
	"github.com/cn-relay-manager/cn-relay-manager/internal/catalog"
	"github.com/cn-relay-manager/cn-relay-manager/internal/hostreg"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/step"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
	"github.com/cn-relay-manager/cn-relay-manager/jobs"
)

// scriptedProber answers by host name: "bad-creds" → auth_failed, "down" → unreachable.
type scriptedProber struct{}

func (scriptedProber) ProbeHost(_ context.Context, h *store.Host) error {
	switch h.Name {
	case "down":
		return errors.New("dial tcp: connection refused")
	case "bad-creds":
		h.Status, h.StatusMessage = "auth_failed", "the host refused the admin credentials"
		return nil
	}
	h.Version, h.Profile, h.Status = "0.1.179", "0.1.179", "ok"
	h.Warnings, h.Flags = []string{}, map[string]bool{"compliance": false}
	now := time.Now().UTC()
	h.ProbedAt = &now
	return nil
}

// ledgerChecker refuses rollbacks of batches with no ledger row, like the engine does.
type ledgerChecker struct{ st *store.Store }

func (l ledgerChecker) CheckRollback(ctx context.Context, batchID string) error {
	if _, err := l.st.GetBatch(ctx, batchID); err != nil {
		return err
	}
	rows, _, err := l.st.ListResources(ctx, store.ResourceFilter{BatchID: batchID, Limit: 1})
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return store.ErrNothingRecorded
	}
	return nil
}

// contract drives the real API and validates every exchange against the OpenAPI document.
type contract struct {
	t       *testing.T
	app     *fiber.App
	doc     *openapi3.T
	router  routers.Router
	covered map[string]map[int]bool // "METHOD /fiber/route" → statuses validated
}

type exchange struct {
	method, path, body string
	noAuth             bool
	want               int
	// badInput marks requests the document itself forbids (wrong types, unknown fields,
	// out-of-range query values): only the response is validated, and the document must
	// refuse the request too unless semantic is set (a rule a schema cannot express).
	badInput, semantic bool
}

var pathParam = regexp.MustCompile(`\{([^}]+)\}`)

func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(OpenAPIDocument)
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI 3 document: %v", err)
	}
	return doc
}

func (c *contract) do(ex exchange) map[string]any {
	t := c.t
	t.Helper()
	newReq := func() *http.Request {
		var body io.Reader
		if ex.body != "" {
			body = strings.NewReader(ex.body)
		}
		r := httptest.NewRequest(ex.method, ex.path, body)
		if ex.body != "" {
			r.Header.Set("Content-Type", "application/json")
		}
		if !ex.noAuth {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		return r
	}
	resp, err := c.app.Test(newReq(), -1)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	name := ex.method + " " + ex.path
	if resp.StatusCode != ex.want {
		t.Errorf("%s: status %d, want %d: %s", name, resp.StatusCode, ex.want, raw)
	}
	if resp.Header.Get(HeaderRequestID) == "" {
		t.Errorf("%s: no X-Request-Id in the response", name)
	}
	vreq := newReq()
	route, params, err := c.router.FindRoute(vreq)
	if err != nil {
		t.Errorf("%s: not in the OpenAPI document: %v", name, err)
		return nil
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: opts}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	switch {
	case !ex.badInput && reqErr != nil:
		t.Errorf("%s: request does not match the document: %v", name, reqErr)
	case ex.badInput && !ex.semantic && reqErr == nil:
		t.Errorf("%s: the document accepts a request the API refuses (body %s)", name, ex.body)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(raw)), Options: opts}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("%s → %d: response does not match the document: %v\n%s", name, resp.StatusCode, err, raw)
		return nil
	}
	key := ex.method + " " + pathParam.ReplaceAllString(route.Path, ":$1")
	if c.covered[key] == nil {
		c.covered[key] = map[int]bool{}
	}
	c.covered[key][resp.StatusCode] = true
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return m
}

func field(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		mm, _ := v.(map[string]any)
		v = mm[k]
	}
	return v
}

// TestOpenAPIDocumentMatchesRealResponses exercises every route the API registers, with
// successes and errors (400 naming a field, 401, 404, 409, 422, 503), and validates each
// real request and response against openapi.json. A route without a validated exchange,
// or a documented operation the API does not register, fails the test.
func TestOpenAPIDocumentMatchesRealResponses(t *testing.T) {
	doc := loadOpenAPI(t)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "openapi.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	box, _ := secret.NewBox("api-test-master-key-000")
	var notReady atomic.Bool
	batches := &batch.Service{Store: st, Queue: &jobs.Queue{Client: &fakeEnqueuer{}}, Box: box, Catalog: catalog.Default(), Rollbacks: ledgerChecker{st}}
	s := &Server{Store: st, Batches: batches, Hosts: &hostreg.Service{Store: st, Box: box, Prober: scriptedProber{}}, Accounts: accountsService(st, box),
		Token: token, Log: slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Ready: func(context.Context) error {
			if notReady.Load() {
				return errors.New("queue down")
			}
			return nil
		}}
	c := &contract{t: t, app: s.NewApp(), doc: doc, router: router, covered: map[string]map[int]bool{}}

	// Health and the document itself.
	c.do(exchange{method: "GET", path: "/healthz", noAuth: true, want: 200})
	c.do(exchange{method: "GET", path: "/readyz", noAuth: true, want: 200})
	notReady.Store(true)
	c.do(exchange{method: "GET", path: "/readyz", noAuth: true, want: 503})
	notReady.Store(false)
	c.do(exchange{method: "GET", path: OpenAPIPath, want: 200})

	// Hosts.
	h := c.do(exchange{method: "POST", path: "/api/v1/hosts", want: 201,
		body: `{"name":"h1","admin_url":"http://127.0.0.1:1","admin_api_key":"admin-secret-key-0123456789abcdef"}`})
	hostID, _ := h["id"].(string)
	if hostID == "" {
		t.Fatal("no host registered")
	}
	h2 := c.do(exchange{method: "POST", path: "/api/v1/hosts", want: 201,
		body: `{"name":"h2","admin_url":"http://127.0.0.1:2","public_url":"https://relay.example","admin_email":"a@b.c","admin_password":"pw-0123456789"}`})
	host2ID, _ := h2["id"].(string)
	c.do(exchange{method: "POST", path: "/api/v1/hosts", want: 409,
		body: `{"name":"h1","admin_url":"http://127.0.0.1:1","admin_api_key":"admin-secret-key-0123456789abcdef"}`})
	e := c.do(exchange{method: "POST", path: "/api/v1/hosts", want: 422,
		body: `{"name":"bad-creds","admin_url":"http://127.0.0.1:1","admin_api_key":"admin-secret-key-0123456789abcdef"}`})
	if field(e, "error", "code") != "host_auth_failed" || field(e, "error", "field") != "admin_api_key" {
		t.Errorf("auth failure: %v", e)
	}
	c.do(exchange{method: "POST", path: "/api/v1/hosts", want: 422,
		body: `{"name":"down","admin_url":"http://127.0.0.1:1","admin_api_key":"admin-secret-key-0123456789abcdef"}`})
	e = c.do(exchange{method: "POST", path: "/api/v1/hosts", want: 400, badInput: true, semantic: true,
		body: `{"name":"h3","admin_url":"not a url","admin_api_key":"x"}`})
	if field(e, "error", "field") != "admin_url" {
		t.Errorf("bad url names %v", field(e, "error", "field"))
	}
	e = c.do(exchange{method: "POST", path: "/api/v1/hosts", want: 400, badInput: true, semantic: true,
		body: `{"name":"h3\u0000","admin_url":"http://x","admin_api_key":"x"}`})
	if field(e, "error", "field") != "name" {
		t.Errorf("NUL in the host name names %v", field(e, "error", "field"))
	}
	e = c.do(exchange{method: "POST", path: "/api/v1/hosts", want: 400, badInput: true, body: `{"name":"h3","admin_url":"http://x","extra":1}`})
	if field(e, "error", "field") != "extra" {
		t.Errorf("unknown field names %v", field(e, "error", "field"))
	}
	c.do(exchange{method: "GET", path: "/api/v1/hosts", want: 200})
	c.do(exchange{method: "GET", path: "/api/v1/hosts/" + hostID, want: 200})
	c.do(exchange{method: "GET", path: "/api/v1/hosts/nope", want: 404})
	c.do(exchange{method: "POST", path: "/api/v1/hosts/" + hostID + "/probe", want: 200})
	c.do(exchange{method: "POST", path: "/api/v1/hosts/nope/probe", want: 404})
	// Host lifecycle: rename, rotate the admin key, switch to a password, test connection.
	if u := c.do(exchange{method: "PATCH", path: "/api/v1/hosts/" + host2ID, want: 200, body: `{"name":"h2-renamed","public_url":"https://relay2.example"}`}); u["name"] != "h2-renamed" || u["public_url"] != "https://relay2.example" {
		t.Errorf("rename: %v", u)
	}
	if u := c.do(exchange{method: "PATCH", path: "/api/v1/hosts/" + host2ID, want: 200, body: `{"admin_api_key":"rotated-admin-key-0123456789"}`}); u["auth_kind"] != "api_key" || u["admin_key_masked"] != "rotate...6789" {
		t.Errorf("admin key rotation: %v", u)
	}
	c.do(exchange{method: "PATCH", path: "/api/v1/hosts/" + host2ID, want: 200, body: `{"admin_email":"ops@b.c","admin_password":"pw-9876543210"}`})
	e = c.do(exchange{method: "PATCH", path: "/api/v1/hosts/" + host2ID, want: 409, body: `{"name":"h1"}`})
	if field(e, "error", "code") != "host_exists" {
		t.Errorf("rename onto another host: %v", e)
	}
	e = c.do(exchange{method: "PATCH", path: "/api/v1/hosts/" + host2ID, want: 422, body: `{"name":"bad-creds","admin_api_key":"refused-admin-key-0123456789"}`})
	if field(e, "error", "code") != "host_auth_failed" || field(e, "error", "field") != "admin_api_key" {
		t.Errorf("refused admin key: %v", e)
	}
	if g := c.do(exchange{method: "GET", path: "/api/v1/hosts/" + host2ID, want: 200}); g["name"] != "h2-renamed" || g["auth_kind"] != "password" {
		t.Errorf("a refused change was saved: %v", g)
	}
	e = c.do(exchange{method: "PATCH", path: "/api/v1/hosts/" + host2ID, want: 400, badInput: true, semantic: true, body: `{"admin_url":"ftp://x"}`})
	if field(e, "error", "field") != "admin_url" {
		t.Errorf("bad admin_url names %v", field(e, "error", "field"))
	}
	c.do(exchange{method: "PATCH", path: "/api/v1/hosts/nope", want: 404, body: `{"name":"x"}`})
	if r := c.do(exchange{method: "POST", path: "/api/v1/hosts/" + hostID + "/test", want: 200}); r["ok"] != true || r["settings"] != "stored" || r["version"] != "0.1.179" {
		t.Errorf("test connection: %v", r)
	}
	if r := c.do(exchange{method: "POST", path: "/api/v1/hosts/" + hostID + "/test", want: 200, body: `{"name":"bad-creds","admin_api_key":"new-admin-key-0123456789"}`}); r["ok"] != false || r["status"] != "auth_failed" || r["settings"] != "given" {
		t.Errorf("test of refused settings: %v", r)
	}
	c.do(exchange{method: "POST", path: "/api/v1/hosts/nope/test", want: 404})
	run := c.do(exchange{method: "POST", path: "/api/v1/hosts/" + hostID + "/reconcile", want: 202})
	c.do(exchange{method: "POST", path: "/api/v1/hosts/nope/reconcile", want: 404})

	// Batches.
	submit := `{"host_id":"` + hostID + `","name":"b1","mode":"subscription","window":{"deadline_s":600,"schedule_s":[5,30]},"topup_amount":10,"validity_days":30,` +
		`"items":[{"base_url":"https://api.deepseek.com/chat/completions","api_key":"sk-abcdef123456789","models":["deepseek-chat"],"name":"ds","provider":"deepseek"},` +
		`{"base_url":"https://api.moonshot.cn/v1","api_key":"sk-zyxw987654321000"}]}`
	sub := c.do(exchange{method: "POST", path: "/api/v1/batches", body: submit, want: 201})
	batchID, _ := field(sub, "batch", "id").(string)
	dry := c.do(exchange{method: "POST", path: "/api/v1/batches", want: 201,
		body: `{"host_id":"` + hostID + `","dry_run":true,"items":[{"base_url":"https://api.deepseek.com","api_key":"sk-dryrun0123456789"}]}`})
	dryID, _ := field(dry, "batch", "id").(string)
	if batchID == "" || dryID == "" {
		t.Fatal("batches not submitted")
	}
	for _, bad := range []struct {
		body, field    string
		schemaRefusing bool
	}{
		{`{"host_id":"` + hostID + `","items":[{"base_url":"ftp://x","api_key":"k"}]}`, "items[0].base_url", false},
		{`{"host_id":"` + hostID + `","mode":"free","items":[{"base_url":"https://api.deepseek.com","api_key":"k"}]}`, "mode", true},
		{`{"host_id":"` + hostID + `","items":[]}`, "items", true},
		{`{"host_id":"` + hostID + `","window":{"schedule_s":[0]},"items":[{"base_url":"https://api.deepseek.com","api_key":"k"}]}`, "window.schedule_s", true},
		{`{"host_id":"nope","items":[{"base_url":"https://api.deepseek.com","api_key":"k"}]}`, "host_id", false},
	} {
		e := c.do(exchange{method: "POST", path: "/api/v1/batches", body: bad.body, want: 400, badInput: true, semantic: !bad.schemaRefusing})
		if field(e, "error", "field") != bad.field {
			t.Errorf("%s: names %v, want %s", bad.body, field(e, "error", "field"), bad.field)
		}
	}
	c.do(exchange{method: "GET", path: "/api/v1/batches?host_id=" + hostID + "&page=1&page_size=10", want: 200})
	e = c.do(exchange{method: "GET", path: "/api/v1/batches?page=0", want: 400, badInput: true})
	if field(e, "error", "field") != "page" {
		t.Errorf("page=0 names %v", field(e, "error", "field"))
	}
	c.do(exchange{method: "GET", path: "/api/v1/batches/" + batchID, want: 200})
	c.do(exchange{method: "GET", path: "/api/v1/batches/nope", want: 404})
	items := c.do(exchange{method: "GET", path: "/api/v1/batches/" + batchID + "/items", want: 200})
	c.do(exchange{method: "GET", path: "/api/v1/batches/" + batchID + "/items?page_size=5000", want: 400, badInput: true})
	c.do(exchange{method: "GET", path: "/api/v1/batches/nope/items", want: 404})

	// Give the first item an attempt with HTTP evidence and a ledger row, as a worker would.
	list, _ := items["items"].([]any)
	if len(list) != 2 {
		t.Fatalf("items: %v", items)
	}
	itemID, _ := list[0].(map[string]any)["id"].(string)
	it, err := st.GetItem(ctx, itemID)
	if err != nil {
		t.Fatal(err)
	}
	seq := it.Seq
	it.Status, it.FailureClass, it.FailureMessage = store.ItemFailed, "rate_limited", "429 from the provider"
	now := time.Now().UTC()
	if err := st.CompleteStep(ctx, it, seq, &store.Attempt{Step: step.Import, Seq: seq, Number: 1, Outcome: store.OutcomeFailed,
		FailureClass: "rate_limited", Message: "429", StartedAt: now, FinishedAt: now,
		Evidence: []store.Exchange{{Target: "upstream", Method: "GET", Path: "/v1/models", Status: 429, LatencyMS: 12, Preview: `{"error":"****"}`, At: now}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.EnsureIntent(ctx, &store.Resource{HostID: hostID, BatchID: batchID, ItemID: itemID, Type: store.TypeAccount,
		Name: "crm-account-" + batchID + "-0-" + itemID}); err != nil {
		t.Fatal(err)
	}
	d := c.do(exchange{method: "GET", path: "/api/v1/batches/" + batchID + "/items/" + itemID, want: 200})
	if atts, _ := d["attempts"].([]any); len(atts) != 1 {
		t.Errorf("attempts: %v", d["attempts"])
	}
	c.do(exchange{method: "GET", path: "/api/v1/batches/" + dryID + "/items/" + itemID, want: 404})
	c.do(exchange{method: "GET", path: "/api/v1/batches/" + batchID + "/items/nope", want: 404})
	c.do(exchange{method: "POST", path: "/api/v1/batches/" + batchID + "/retry", want: 200})
	c.do(exchange{method: "POST", path: "/api/v1/batches/nope/retry", want: 404})
	c.do(exchange{method: "POST", path: "/api/v1/batches/" + batchID + "/cancel", want: 200})
	c.do(exchange{method: "POST", path: "/api/v1/batches/nope/cancel", want: 404})
	c.do(exchange{method: "POST", path: "/api/v1/batches/" + batchID + "/rollback", want: 202})
	e = c.do(exchange{method: "POST", path: "/api/v1/batches/" + dryID + "/rollback", want: 409})
	if field(e, "error", "code") != "nothing_to_roll_back" {
		t.Errorf("rollback of an empty ledger: %v", e)
	}
	c.do(exchange{method: "POST", path: "/api/v1/batches/nope/rollback", want: 404})
	c.do(exchange{method: "POST", path: "/api/v1/batches/" + batchID + "/reconcile", want: 202})
	c.do(exchange{method: "POST", path: "/api/v1/batches/nope/reconcile", want: 404})
	c.do(exchange{method: "POST", path: "/api/v1/batches/" + dryID + "/import", want: 201})
	c.do(exchange{method: "POST", path: "/api/v1/batches/" + batchID + "/import", want: 409})
	c.do(exchange{method: "POST", path: "/api/v1/batches/nope/import", want: 404})

	// Reconcile runs and the ledger.
	runID, _ := run["id"].(string)
	c.do(exchange{method: "GET", path: "/api/v1/reconcile-runs?host_id=" + hostID + "&limit=5", want: 200})
	c.do(exchange{method: "GET", path: "/api/v1/reconcile-runs/" + runID, want: 200})
	c.do(exchange{method: "GET", path: "/api/v1/reconcile-runs/nope", want: 404})
	c.do(exchange{method: "POST", path: "/api/v1/reconcile-runs/" + runID + "/repair", want: 409}) // still queued
	done := &store.ReconcileRun{HostID: hostID, Status: "completed", Findings: []store.Finding{{Kind: "modified", Code: "account_unschedulable",
		ResourceType: "account", HostResourceID: "7", Name: "crm-a", Detail: "account is not schedulable"}}}
	if err := st.CreateReconcileRun(ctx, done); err != nil {
		t.Fatal(err)
	}
	c.do(exchange{method: "POST", path: "/api/v1/reconcile-runs/" + done.ID + "/repair", want: 202})
	// A run in progress and a skipped periodic slot, as the worker stores them.
	running := &store.ReconcileRun{HostID: hostID, Slot: "202612062200"}
	if err := st.CreateReconcileRun(ctx, running); err != nil {
		t.Fatal(err)
	}
	running.ObjectsChecked, running.ObjectsTotal = 400, 601
	if err := st.ReconcileProgress(ctx, running); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateReconcileRun(ctx, &store.ReconcileRun{HostID: hostID, Slot: "202612062205", Status: store.RunSkipped,
		Summary: "skipped: reconcile run " + running.ID + " is still running"}); err != nil {
		t.Fatal(err)
	}
	listed := c.do(exchange{method: "GET", path: "/api/v1/reconcile-runs?host_id=" + hostID, want: 200})
	statuses := map[string]bool{}
	for _, r := range listed["items"].([]any) {
		statuses[r.(map[string]any)["status"].(string)] = true
	}
	if !statuses["running"] || !statuses["skipped"] {
		t.Errorf("run statuses listed: %v", statuses)
	}
	if p := c.do(exchange{method: "GET", path: "/api/v1/reconcile-runs/" + running.ID, want: 200}); p["objects_checked"] != 400.0 || p["objects_total"] != 601.0 {
		t.Errorf("progress: %v of %v", p["objects_checked"], p["objects_total"])
	}
	e = c.do(exchange{method: "GET", path: "/api/v1/reconcile-runs?host_id=a%00b", want: 400, badInput: true, semantic: true})
	if field(e, "error", "field") != "host_id" {
		t.Errorf("query NUL names %v", field(e, "error", "field"))
	}
	c.do(exchange{method: "POST", path: "/api/v1/reconcile-runs/nope/repair", want: 404})
	r := c.do(exchange{method: "GET", path: "/api/v1/resources?batch_id=" + batchID, want: 200})
	if rows, _ := r["items"].([]any); len(rows) != 1 {
		t.Errorf("ledger: %v", r)
	}
	c.do(exchange{method: "GET", path: "/api/v1/resources?page_size=0", want: 400, badInput: true})
	exerciseAccounts(t, c, st, hostID, batchID, itemID)

	// Deleting hosts: one without history; one whose items run (refused), whose ledger
	// holds an object (refused unless forget=true).
	if del := c.do(exchange{method: "DELETE", path: "/api/v1/hosts/" + host2ID, want: 200}); field(del, "forgotten", "ledger_total") != 0.0 {
		t.Errorf("delete: %v", del)
	}
	c.do(exchange{method: "DELETE", path: "/api/v1/hosts/" + host2ID, want: 404})
	if e := c.do(exchange{method: "DELETE", path: "/api/v1/hosts/" + hostID, want: 409}); field(e, "error", "code") != "host_busy" {
		t.Errorf("delete with running items: %v", e)
	}
	bl, _, err := st.ListBatches(ctx, store.BatchFilter{HostID: hostID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bl {
		if _, err := st.CancelBatch(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
	}
	e = c.do(exchange{method: "DELETE", path: "/api/v1/hosts/" + hostID, want: 409})
	if msg, _ := field(e, "error", "message").(string); field(e, "error", "code") != "host_in_use" || !strings.Contains(msg, "1 object (1 account)") || !strings.Contains(msg, "forget=true") {
		t.Errorf("delete with ledger objects: %v", e)
	}
	c.do(exchange{method: "DELETE", path: "/api/v1/hosts/" + hostID + "?forget=maybe", want: 400, badInput: true})
	del := c.do(exchange{method: "DELETE", path: "/api/v1/hosts/" + hostID + "?forget=true", want: 200})
	if msg, _ := del["message"].(string); field(del, "forgotten", "ledger_total") != 1.0 || !strings.Contains(msg, "stay on the host") {
		t.Errorf("forgetting delete: %v", del)
	}
	if hl := c.do(exchange{method: "GET", path: "/api/v1/hosts", want: 200}); hl["total"] != 0.0 {
		t.Errorf("hosts left: %v", hl)
	}

	// Every route: a validated success, and a validated 401 without the token.
	var missing []string
	registered := map[string]bool{}
	for _, rt := range c.app.GetRoutes(true) {
		switch rt.Method {
		case "HEAD", "OPTIONS", "CONNECT", "TRACE":
			continue
		}
		key := rt.Method + " " + rt.Path
		registered[key] = true
		if rt.Path != "/healthz" && rt.Path != "/readyz" {
			c.do(exchange{method: rt.Method, path: strings.NewReplacer(":id", "x", ":item", "y").Replace(rt.Path), noAuth: true, want: 401,
				badInput: true, semantic: true}) // no body, made-up IDs: only the 401 is checked
		}
		ok := false
		for st := range c.covered[key] {
			ok = ok || st < 300
		}
		if !ok {
			missing = append(missing, key)
		}
	}
	if len(registered) < 19 {
		t.Fatalf("crawled only %d routes", len(registered))
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("routes without a validated successful exchange: %v", missing)
	}
	// Every documented operation is a registered route.
	for p, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if key := method + " " + pathParam.ReplaceAllString(p, ":$1"); !registered[key] {
				t.Errorf("documented but not registered: %s", key)
			}
		}
	}
	// The error statuses the issue asks for were all validated.
	seen := map[int]bool{}
	for _, sts := range c.covered {
		for st := range sts {
			seen[st] = true
		}
	}
	for _, st := range []int{400, 401, 404, 409, 422, 503} {
		if !seen[st] {
			t.Errorf("no validated %d response", st)
		}
	}
}
