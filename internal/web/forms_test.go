package web

import (
	"bytes"
	"context"
	"mime/multipart"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// multipartForm posts fields (and one file) as the import form does.
func (f *fixture) multipart(t *testing.T, path string, fields map[string]string, file, fileName string, hdr map[string]string) resp {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	for k, v := range fields {
		if err := w.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if fileName != "" {
		fw, err := w.CreateFormFile("file", fileName)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write([]byte(file)) //nolint:errcheck
	}
	w.Close()
	req := httptest.NewRequest("POST", path, &body)
	req.Header.Set("Content-Type", w.FormDataContentType())
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := f.app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	b := new(bytes.Buffer)
	b.ReadFrom(res.Body) //nolint:errcheck
	return resp{code: res.StatusCode, body: b.String(), hdr: res.Header, raw: res}
}

// Registering, editing (rename, key rotation, a refused key), testing and deleting a host
// from the pages, through the host service; secrets never come back in a page.
func TestHostFormsLifecycle(t *testing.T) {
	f := setup(t)
	ck := map[string]string{"Cookie": f.login(t), "Accept-Language": "en"}
	form := f.do(t, "GET", "/hosts/new", nil, ck)
	if form.code != 200 || !strings.Contains(form.body, `name="admin_api_key"`) {
		t.Fatalf("register form: %d", form.code)
	}
	tok := csrfOf(t, form.body)
	post := func(path string, v url.Values) resp {
		v.Set("csrf", tok)
		return f.do(t, "POST", path, v, ck)
	}
	// Without a CSRF token nothing happens.
	if r := f.do(t, "POST", "/hosts/new", url.Values{"name": {"x"}}, ck); r.code != fiber.StatusForbidden {
		t.Fatalf("no csrf: %d", r.code)
	}
	r := post("/hosts/new", url.Values{"name": {"cn-relay"}, "admin_url": {"https://relay.example"}, "auth": {"api_key"}, "admin_api_key": {"wrong-admin-key-000000"}})
	if r.code != fiber.StatusUnprocessableEntity || !strings.Contains(r.body, "refused the admin credentials") || strings.Contains(r.body, "wrong-admin-key-000000") {
		t.Fatalf("refused key: %d", r.code)
	}
	if !strings.Contains(r.body, `value="cn-relay"`) || !strings.Contains(r.body, `value="https://relay.example"`) {
		t.Error("the refused form lost what was typed")
	}
	r = post("/hosts/new", url.Values{"name": {"cn-relay"}, "admin_url": {"ftp://relay"}, "admin_api_key": {goodAdminKey}})
	if r.code != fiber.StatusBadRequest || !strings.Contains(r.body, "admin_url must be an http(s) URL") {
		t.Fatalf("bad url: %d", r.code)
	}
	r = post("/hosts/new", url.Values{"name": {"cn-relay"}, "admin_url": {"https://relay.example/"}, "auth": {"api_key"}, "admin_api_key": {goodAdminKey}})
	if r.code != fiber.StatusSeeOther || !strings.HasPrefix(r.hdr.Get("Location"), "/hosts/") {
		t.Fatalf("register: %d %s", r.code, r.body)
	}
	hostPath := strings.TrimSuffix(r.hdr.Get("Location"), "?done=registered")
	page := f.do(t, "GET", r.hdr.Get("Location"), nil, ck)
	if !strings.Contains(page.body, "Host registered") || !strings.Contains(page.body, "good-a...cdef") || strings.Contains(page.body, goodAdminKey) {
		t.Fatalf("host page after registering: %d", page.code)
	}
	if r := post("/hosts/new", url.Values{"name": {"cn-relay"}, "admin_url": {"https://relay.example"}, "admin_api_key": {goodAdminKey}}); r.code != fiber.StatusConflict || !strings.Contains(r.body, "already registered") {
		t.Errorf("same name again: %d", r.code)
	}

	// Test connection: stored settings, then given ones from the edit form.
	r = post(hostPath+"/test", url.Values{})
	if r.code != 200 || !strings.Contains(r.body, `id="test-result"`) || !strings.Contains(r.body, "Connection OK") {
		t.Errorf("test connection: %d", r.code)
	}
	edit := f.do(t, "GET", hostPath+"/edit", nil, ck)
	if edit.code != 200 || !strings.Contains(edit.body, `value="cn-relay"`) || strings.Contains(edit.body, goodAdminKey) {
		t.Fatalf("edit form: %d", edit.code)
	}
	vals := url.Values{"name": {"cn-relay"}, "admin_url": {"https://relay.example"}, "public_url": {"https://relay.example"}, "auth": {"api_key"}}
	withKey := func(k, op string) url.Values {
		v := url.Values{}
		for a, b := range vals {
			v[a] = b
		}
		v.Set("admin_api_key", k)
		v.Set("op", op)
		return v
	}
	r = post(hostPath+"/edit", withKey("another-bad-key-0000000", "test"))
	if r.code != 200 || !strings.Contains(r.body, "Connection failed") || !strings.Contains(r.body, "nothing was saved") {
		t.Errorf("test of a bad key: %d", r.code)
	}
	r = post(hostPath+"/edit", withKey("another-bad-key-0000000", "save"))
	if r.code != fiber.StatusUnprocessableEntity || !strings.Contains(r.body, "refused the admin credentials") {
		t.Errorf("save of a bad key: %d", r.code)
	}
	ho, _ := f.st.GetHostByName(context.Background(), "cn-relay")
	if ho == nil || ho.AdminKeyMasked != "good-a...cdef" {
		t.Fatalf("a refused key was saved: %+v", ho)
	}
	v := withKey("", "save")
	v.Set("name", "cn-relay-2")
	if r := post(hostPath+"/edit", v); r.code != fiber.StatusSeeOther || !strings.HasSuffix(r.hdr.Get("Location"), "?done=updated") {
		t.Fatalf("rename: %d %s", r.code, r.body)
	}
	if ho, _ := f.st.GetHost(context.Background(), ho.ID); ho.Name != "cn-relay-2" || ho.AdminKeyMasked != "good-a...cdef" {
		t.Errorf("after the rename: %+v", ho)
	}

	// Delete: a host with no history goes at once; the fixture's host holds a ledger row.
	conf := f.do(t, "GET", hostPath+"/delete", nil, ck)
	if conf.code != 200 || strings.Contains(conf.body, `name="forget"`) {
		t.Fatalf("delete confirmation of an unused host: %d", conf.code)
	}
	r = post(hostPath+"/delete", url.Values{"confirm": {"yes"}})
	if r.code != fiber.StatusSeeOther || !strings.HasPrefix(r.hdr.Get("Location"), "/hosts?") || !strings.Contains(r.hdr.Get("Location"), "done=deleted") {
		t.Fatalf("delete: %d", r.code)
	}
	if list := f.do(t, "GET", r.hdr.Get("Location"), nil, ck); !strings.Contains(list.body, "Host cn-relay-2 deleted") {
		t.Error("no flash after the delete")
	}
	busy := "/hosts/" + f.host.ID
	if conf := f.do(t, "GET", busy+"/delete", nil, ck); !strings.Contains(conf.body, "still running") {
		t.Error("the confirmation does not say items are running")
	}
	if r := post(busy+"/delete", url.Values{"confirm": {"yes"}, "forget": {"yes"}}); r.code != fiber.StatusConflict || !strings.Contains(r.body, "still running") {
		t.Errorf("delete of a busy host: %d", r.code)
	}
	if _, err := f.st.CancelBatch(context.Background(), f.run.ID); err != nil {
		t.Fatal(err)
	}
	if conf := f.do(t, "GET", busy+"/delete", nil, ck); !strings.Contains(conf.body, `name="forget"`) || !strings.Contains(conf.body, "The ledger holds 1 objects") {
		t.Error("the confirmation does not offer to forget the ledger's object")
	}
	if r := post(busy+"/delete", url.Values{"confirm": {"yes"}}); r.code != fiber.StatusConflict || !strings.Contains(r.body, "forget=true") {
		t.Errorf("delete without forget: %d", r.code)
	}
	if r := post(busy+"/delete", url.Values{"confirm": {"yes"}, "forget": {"yes"}}); r.code != fiber.StatusSeeOther || !strings.Contains(r.hdr.Get("Location"), "ledger=1") {
		t.Errorf("forgetting delete: %d %q", r.code, r.hdr.Get("Location"))
	}
}

// Importing keys from the page: pasted lines or an uploaded CSV, validated by the batch
// service; a refusal names the input line and never sends a key back.
func TestBatchImportForm(t *testing.T) {
	f := setup(t)
	ck := map[string]string{"Cookie": f.login(t), "Accept-Language": "en"}
	form := f.do(t, "GET", "/batches/new?host="+f.host.ID, nil, ck)
	if form.code != 200 || !strings.Contains(form.body, `enctype="multipart/form-data"`) || !strings.Contains(form.body, `value="`+f.host.ID+`" selected`) {
		t.Fatalf("import form: %d", form.code)
	}
	tok := csrfOf(t, form.body)
	const k1, k2 = "sk-webform-aaaaaaaaaaaa0001", "sk-webform-bbbbbbbbbbbb0002"
	base := map[string]string{"csrf": tok, "host_id": f.host.ID, "mode": "self_service", "group": "per_provider", "format": "auto"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	// No CSRF token: refused.
	if r := f.multipart(t, "/batches/new", map[string]string{"host_id": f.host.ID, "items": "https://api.deepseek.com " + k1}, "", "", ck); r.code != fiber.StatusForbidden {
		t.Fatalf("no csrf: %d", r.code)
	}
	// A parse error names the line; the batch service's refusal names the line and the item.
	r := f.multipart(t, "/batches/new", with(map[string]string{"op": "preview", "items": "# keys\nhttps://api.deepseek.com " + k1 + "\nnot-a-url " + k2}), "", "", ck)
	if r.code != 400 || !strings.Contains(r.body, "line 3:") || strings.Contains(r.body, k1) || strings.Contains(r.body, k2) {
		t.Errorf("parse error: %d", r.code)
	}
	r = f.multipart(t, "/batches/new", with(map[string]string{"op": "preview", "items": "https://api.deepseek.com " + k1 + "\n\nhttps://api.deepseek.com " + k1}), "", "", ck)
	if r.code != 400 || !strings.Contains(r.body, "line 3: item 2: the same key is already item 1") || strings.Contains(r.body, k1) {
		t.Errorf("duplicate key: %d", r.code)
	}
	r = f.multipart(t, "/batches/new", with(map[string]string{"op": "preview", "group": "existing", "items": "https://api.deepseek.com " + k1}), "", "", ck)
	if r.code != 400 || !strings.Contains(r.body, "mode existing needs the group") {
		t.Errorf("existing group without a name: %d", r.code)
	}
	r = f.multipart(t, "/batches/new", with(map[string]string{"op": "preview", "deadline": "soon", "items": "https://api.deepseek.com " + k1}), "", "", ck)
	if r.code != 400 || !strings.Contains(r.body, `deadline &#34;soon&#34;`) {
		t.Errorf("bad deadline: %d", r.code)
	}
	if n := f.acts.n("submit"); n != 2 {
		t.Errorf("submitted %d times, want 2 (the form's own checks stop the others)", n)
	}

	// A preview (dry run) from pasted lines, with a window and a group prefix.
	r = f.multipart(t, "/batches/new", with(map[string]string{"op": "preview", "name": "from the page", "group_prefix": "web", "deadline": "5m",
		"schedule": "2s, 5s", "items": "https://api.deepseek.com " + k1 + " deepseek-chat\nhttps://api.moonshot.cn/v1 " + k2}), "", "", ck)
	if r.code != fiber.StatusSeeOther || !strings.HasSuffix(r.hdr.Get("Location"), "?done=preview") {
		t.Fatalf("preview: %d %s", r.code, r.body)
	}
	id := strings.TrimSuffix(strings.TrimPrefix(r.hdr.Get("Location"), "/batches/"), "?done=preview")
	b, err := f.st.GetBatch(context.Background(), id)
	if err != nil || !b.DryRun || b.Name != "from the page" || b.Options.WindowDeadlineS != 300 || len(b.Options.WindowScheduleS) != 2 ||
		b.Options.TargetGroup.Prefix != "web" || b.ItemCount != 2 {
		t.Fatalf("stored preview %+v %v", b, err)
	}
	page := f.do(t, "GET", r.hdr.Get("Location"), nil, ck)
	for _, want := range []string{`id="preview-note"`, "Import for real", "deepseek-chat", "https://api.deepseek.com"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("preview page lacks %q", want)
		}
	}
	if strings.Contains(page.body, k1) {
		t.Error("the preview page shows a key")
	}

	// An upload (CSV with a header) imported for real.
	csv := "name,base_url,api_key,models\nds,https://api.deepseek.com," + k1 + "2,deepseek-chat\n"
	r = f.multipart(t, "/batches/new", with(map[string]string{"op": "import", "items": "ignored when a file is chosen"}), csv, "keys.csv", ck)
	if r.code != fiber.StatusSeeOther || !strings.HasSuffix(r.hdr.Get("Location"), "?done=submitted") {
		t.Fatalf("upload: %d %s", r.code, r.body)
	}
	id = strings.TrimSuffix(strings.TrimPrefix(r.hdr.Get("Location"), "/batches/"), "?done=submitted")
	items, _, _ := f.st.ListItems(context.Background(), id, 0, 0)
	if b, _ := f.st.GetBatch(context.Background(), id); b.DryRun || len(items) != 1 || items[0].Name != "ds" || items[0].Status != store.ItemSubmitted {
		t.Errorf("uploaded batch: %+v %+v", b, items)
	}
}

// Items are numbered from 1, the ledger names the item instead of its ID, and a
// capability that was never probed is "not tested", not struck through.
func TestNumberingNamesAndUntestedCapabilities(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	it1, _ := f.st.GetItem(ctx, f.items[1].ID)
	it1.Capability = map[string]any{"models_listed": true, "chat": false, "stream": false, "tools": false, "responses": false, "anthropic": false,
		"tested": []string{"models_listed", "chat"}}
	if _, err := f.st.DB.NewUpdate().Model(it1).Column("capability").WherePK().Exec(ctx); err != nil {
		t.Fatal(err)
	}
	ck := map[string]string{"Cookie": f.login(t), "Accept-Language": "en"}
	d := f.do(t, "GET", "/batches/"+f.done.ID, nil, ck)
	if !strings.Contains(d.body, "<td>1</td>") || !strings.Contains(d.body, "<td>2</td>") || strings.Contains(d.body, "<td>0</td>") {
		t.Error("items are not numbered from 1")
	}
	if !strings.Contains(d.body, "#1 kimi-main</a>") || strings.Contains(d.body, ">"+f.items[0].ID+"</a>") {
		t.Error("the ledger names the item by its ID")
	}
	if !strings.Contains(d.body, "not tested: stream, tools, /responses, anthropic") {
		t.Error("untested capabilities are not shown as not tested")
	}
	it := f.do(t, "GET", "/batches/"+f.done.ID+"/items/"+f.items[1].ID, nil, ck)
	if !strings.Contains(it.body, "Item #2 ") || !strings.Contains(it.body, "not tested: stream") {
		t.Error("the item page is not numbered from 1 or shows untested capabilities as unsupported")
	}
	h := f.do(t, "GET", "/hosts/"+f.host.ID, nil, ck)
	if !strings.Contains(h.body, "#1 kimi-main</a>") || !strings.Contains(h.body, ">june-keys</a>") {
		t.Error("the host page names ledger items or reconcile batches by ID")
	}
	// A profile whose probe learnt nothing (a refused key) is all "not tested".
	it1.Capability = map[string]any{"models_listed": false, "chat": false, "stream": false, "tools": false, "responses": false, "anthropic": false, "tested": nil}
	if _, err := f.st.DB.NewUpdate().Model(it1).Column("capability").WherePK().Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if d := f.do(t, "GET", "/batches/"+f.done.ID, nil, ck); !strings.Contains(d.body, "not tested: models list, chat, stream") {
		t.Error("a refused key's capabilities are not all \"not tested\"")
	}
}
