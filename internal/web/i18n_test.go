package web

import (
	"context"
	"io/fs"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/cn-relay-manager/cn-relay-manager/internal/batch/request"
	"github.com/cn-relay-manager/cn-relay-manager/internal/catalog"
	"github.com/cn-relay-manager/cn-relay-manager/internal/failure"
	"github.com/cn-relay-manager/cn-relay-manager/internal/health"
	"github.com/cn-relay-manager/cn-relay-manager/internal/step"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// vocabularies are the values a template translates with (print "prefix." value): every
// one of them must be in both dictionaries. A template that starts translating a new
// prefix fails TestEveryTemplateKeyTranslated until its values are listed here.
func vocabularies() map[string][]string {
	statuses := []string{"ok", "compliance_required", "auth_failed", "login_blocked", "unreachable", "master_key_mismatch",
		store.RunQueued, store.RunRunning, store.RunCompleted, store.RunFailed, store.RunSkipped}
	statuses = append(statuses, batchStatuses...)
	statuses = append(statuses, itemStatusOrder...)
	var failures []string
	for _, c := range failure.All {
		failures = append(failures, string(c))
	}
	actions := append([]string{"hostreconcile"}, batchActions...)
	return map[string][]string{
		"status.":  statuses,
		"failure.": failures,
		"mode.":    {request.ModeSelfService, request.ModeSubscription, request.ModeNone},
		"method.": {catalog.MethodExact, catalog.MethodCase, catalog.MethodSeparator, catalog.MethodAlias, catalog.MethodRetired,
			catalog.MethodFuzzy, catalog.MethodAmbiguous, catalog.MethodUnresolved, catalog.MethodDefault},
		"cap.":            capKeys,
		"res.":            {store.ResourceIntent, store.ResourceCreated, store.ResourceAdopted, store.ResourceDeleting, store.ResourceDeleted, store.ResourceMissing},
		"kind.":           {"missing", "modified", "orphaned"},
		"action.":         actions,
		"confirm.":        actions,
		"done.":           append(append([]string{}, actions...), "preview", "submitted", "registered", "updated", "unchanged"),
		"target.":         {request.GroupPerProvider, request.GroupExisting, request.GroupPerItem},
		"group.":          {"create", "reuse", "existing"},
		"group.planned.":  {"create", "reuse", "existing"},
		"proof.":          {store.KeyProofAccountTest, store.KeyProofGatewayAlias, store.KeyProofSoleAccount},
		"outcome.":        {store.OutcomeOK, store.OutcomeWaiting, store.OutcomeRetry, store.OutcomeAdvisory, store.OutcomeFailed},
		"step.":           step.Names(),
		"acct.":           {"active", "error", "inactive"},
		"access.":         {"key_bound", "proven"},
		"type.":           {store.TypeGroup, store.TypeAccount, store.TypeUser, store.TypeKey, store.TypeSubscription},
		"accounts.done.":  {"verify", "settings", "webhook", "webhooktest", "webhookdelete", "undo"},
		"health.":         {string(health.Healthy), string(health.Degraded), string(health.Failing)},
		"action.acct.":    {"recovered", "recover_reverted", "parked", "action_failed"},
		"webhook.format.": {"generic", "feishu", "dingtalk", "wecom", "slack"},
		"peer.":           {"host", "gateway", "upstream"},
		"auth.":           {"api_key", "password"},
		"flag.":           {"compliance_gate", "account_test_trusted", "end_user_login_blocked", "compliance"},
		"format.":         {request.FormatAuto, request.FormatCSV, request.FormatJSONL, request.FormatLines},
	}
}

var (
	literalKey = regexp.MustCompile(`\.Tf? "([A-Za-z0-9_.-]+)"`)
	printedKey = regexp.MustCompile(`print "([A-Za-z0-9_.-]+\.)"`)
)

// Every key a template names, literally or as a prefix with a known vocabulary, is in the
// English and the Chinese dictionary.
func TestEveryTemplateKeyTranslated(t *testing.T) {
	vocab := vocabularies()
	err := fs.WalkDir(templateFS, "templates", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		src, _ := fs.ReadFile(templateFS, path)
		var keys []string
		for _, m := range literalKey.FindAllStringSubmatch(string(src), -1) {
			keys = append(keys, m[1])
		}
		for _, m := range printedKey.FindAllStringSubmatch(string(src), -1) {
			values, ok := vocab[m[1]]
			if !ok {
				t.Errorf("%s translates %q + a value, but the test knows no vocabulary for it: add it to vocabularies()", path, m[1])
			}
			for _, v := range values {
				keys = append(keys, m[1]+v)
			}
		}
		for _, k := range keys {
			for _, lang := range []string{"en", "zh"} {
				if _, ok := messages[lang][k]; !ok {
					t.Errorf("%s: key %q is not in the %s dictionary", path, k, lang)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

var (
	templateAction = regexp.MustCompile(`(?s)\{\{.*?\}\}`)
	styleBlock     = regexp.MustCompile(`(?s)<style[^>]*>.*?</style>`)
	htmlTag        = regexp.MustCompile(`(?s)<[^>]*>`)
	latinWord      = regexp.MustCompile(`[A-Za-z]{2,}`)
)

// No template holds text of its own: every word a page shows comes from the dictionary
// (or from the data), so nothing stays English on a 中文 page. The language switcher's
// "English" is the one exception.
func TestTemplatesHoldNoUntranslatedText(t *testing.T) {
	err := fs.WalkDir(templateFS, "templates", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		src, _ := fs.ReadFile(templateFS, path)
		text := templateAction.ReplaceAllString(string(src), " ")
		text = styleBlock.ReplaceAllString(text, " ")
		text = htmlTag.ReplaceAllString(text, " ")
		for _, w := range latinWord.FindAllString(text, -1) {
			if w != "English" {
				t.Errorf("%s shows the untranslated word %q", path, w)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Every page, rendered in Chinese with data in every state the fixture holds (forms with
// refusals, flashes, a connection test, confirmations, errors), looks up only keys the
// Chinese dictionary has: an untranslated key fails the test.
func TestChinesePagesFullyTranslated(t *testing.T) {
	f := setup(t)
	var mu sync.Mutex
	misses := map[string][]string{}
	var page string
	missing = func(lang, key string) {
		mu.Lock()
		defer mu.Unlock()
		misses[key] = append(misses[key], page)
	}
	t.Cleanup(func() { missing = nil })
	ck := map[string]string{"Cookie": f.login(t) + "; lang=zh"}
	tok := csrfOf(t, f.do(t, "GET", "/batches", nil, ck).body)
	get := func(p string) {
		t.Helper()
		page = "GET " + p
		r := f.do(t, "GET", p, nil, ck)
		if r.code >= 500 || !strings.Contains(r.body, `lang="zh-CN"`) {
			t.Errorf("%s: %d", p, r.code)
		}
	}
	post := func(p string, v url.Values) {
		t.Helper()
		page = "POST " + p
		v.Set("csrf", tok)
		if r := f.do(t, "POST", p, v, ck); r.code >= 500 {
			t.Errorf("POST %s: %d", p, r.code)
		}
	}
	anon := func(p string) {
		page = "anonymous GET " + p
		f.do(t, "GET", p, nil, map[string]string{"Cookie": "lang=zh"})
	}

	anon("/login")
	page = "POST /login (wrong token)"
	f.do(t, "POST", "/login", url.Values{"token": {"wrong"}}, map[string]string{"Cookie": "lang=zh"})
	batch, host := "/batches/"+f.done.ID, "/hosts/"+f.host.ID
	for _, p := range []string{"/batches", "/batches?status=running", batch, "/batches/" + f.run.ID, batch + "?done=retry&n=2",
		batch + "?done=preview", batch + "?done=submitted", batch + "/items/" + f.items[0].ID, batch + "/items/" + f.items[1].ID,
		"/batches/nope", "/batches/new", "/hosts", "/hosts?done=deleted&name=x&ledger=1&batches=2", host, host + "?done=registered",
		host + "?done=updated", host + "?done=unchanged", host + "?done=hostreconcile", host + "/edit", host + "/delete", "/hosts/new",
		host + "/reconcile"} {
		get(p)
	}
	for _, a := range batchActions {
		get(batch + "/" + a)
	}
	post(host+"/test", url.Values{})
	post(host+"/edit", url.Values{"name": {"prod-host"}, "admin_url": {"http://admin.example"}, "public_url": {"http://pub.example"},
		"auth": {"api_key"}, "admin_api_key": {"wrong-key-0123456789"}, "op": {"test"}})
	post("/hosts/new", url.Values{"name": {""}, "admin_url": {"ftp://x"}})
	post(host+"/delete", url.Values{"confirm": {"yes"}})
	page = "POST /batches/new (refused)"
	f.multipart(t, "/batches/new", map[string]string{"csrf": tok, "host_id": f.host.ID, "items": "not-a-url sk-x"}, "", "", ck)
	page = "POST /batches/retry without CSRF"
	f.do(t, "POST", batch+"/retry", url.Values{}, ck)

	// A host with no batch and a run of every status fill the remaining states.
	if _, err := f.st.CancelBatch(context.Background(), f.run.ID); err != nil {
		t.Fatal(err)
	}
	get(host + "/delete")

	if len(misses) > 0 {
		var keys []string
		for k := range misses {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			t.Errorf("key %q is not translated into Chinese (looked up by %s)", k, strings.Join(dedupe(misses[k]), ", "))
		}
	}
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// A Chinese entry that is the English one word for word is an untranslated copy, except
// for names and abbreviations that read the same in both.
func TestChineseEntriesAreNotEnglishCopies(t *testing.T) {
	same := map[string]bool{"app.name": true, "col.id": true, "col.httpstatus": true, "time.utc": true, "cap.responses": true,
		"webhook.format.slack": true} // a product name, written so in Chinese too
	for k, en := range messages["en"] {
		if zh := messages["zh"][k]; zh == en && latinWord.MatchString(en) && !same[k] {
			t.Errorf("zh %q is the English text %q", k, en)
		}
	}
}
