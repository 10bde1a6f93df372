package cli

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/apiclient"
	"github.com/cn-relay-manager/cn-relay-manager/internal/batch/request"
	"github.com/cn-relay-manager/cn-relay-manager/internal/notify"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/upstreamsim"
)

// webhookReceiver counts the deliveries it accepted per delivery ID and event type, and
// the ones whose signature verified.
type webhookReceiver struct {
	mu       sync.Mutex
	byID     map[string]int
	byType   map[string]int
	verified int
	secret   string
}

func (r *webhookReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byID[req.Header.Get(notify.HeaderDelivery)]++
	if r.byID[req.Header.Get(notify.HeaderDelivery)] == 1 {
		r.byType[req.Header.Get(notify.HeaderEvent)]++
	}
	if notify.VerifyGeneric(r.secret, req.Header, body, time.Now(), 5*time.Minute) == nil {
		r.verified++
	}
}

func (r *webhookReceiver) snapshot() (map[string]int, map[string]int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids, types := map[string]int{}, map[string]int{}
	for k, v := range r.byID {
		ids[k] = v
	}
	for k, v := range r.byType {
		types[k] = v
	}
	return ids, types, r.verified
}

// The definition of done, on the all-in-one app with the simulators and crmctl:
// a key whose upstream starts refusing for lack of money is reported failing with class
// no_quota at the next run and (opt-in) set unschedulable; once its upstream recovers it
// is made schedulable again and proven through the gateway; a key that still fails is
// never re-enabled; balances are read and shown; a webhook receiver gets each event once.
func TestAccountsAfterImportIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the all-in-one app")
	}
	l := startLiveAPI(t)
	up := l.sims.Upstream
	keys := map[string]string{"recovers": "sk-after-recovers-0000000001", "stillbad": "sk-after-stillbad-0000000002", "healthy": "sk-after-healthy-00000000003"}
	up.AddKey(keys["recovers"], upstreamsim.ModeOK)
	up.AddKey(keys["stillbad"], upstreamsim.ModeOK)
	up.AddKey(keys["healthy"], upstreamsim.ModeOK)
	secrets := []string{keys["recovers"], keys["stillbad"], keys["healthy"], l.sims.AdminKey, "hook-signing-secret-42"}

	if r := l.run(t, "", "hosts", "add", "--name", "prod", "--admin-url", l.sims.Host.URL(), "--admin-key", l.sims.AdminKey); r.code != 0 {
		t.Fatalf("hosts add: exit %d", r.code)
	}
	client := apiclient.New(l.base, l.token)
	ctx := context.Background()
	hostID, err := client.ResolveHost(ctx, "prod")
	if err != nil {
		t.Fatal(err)
	}
	rcv := &webhookReceiver{byID: map[string]int{}, byType: map[string]int{}, secret: "hook-signing-secret-42"}
	hook := httptest.NewServer(rcv)
	defer hook.Close()
	if _, err := client.Do(ctx, http.MethodPut, "/api/v1/hosts/"+hostID+"/account-settings", nil,
		map[string]any{"auto_recover": true, "park_failing": true, "low_balance": 50}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Do(ctx, http.MethodPost, "/api/v1/hosts/"+hostID+"/webhooks", nil,
		map[string]any{"format": "generic", "url": hook.URL + "/crm/TOKEN-IN-PATH", "secret": "hook-signing-secret-42"}, nil); err != nil {
		t.Fatal(err)
	}

	csvPath := demoCSV(t, []request.Item{
		{Name: "recovers", Provider: "kimi", BaseURL: up.BaseURL("kimi"), APIKey: keys["recovers"], Models: []string{"kimi-k2.6"}},
		{Name: "stillbad", Provider: "kimi", BaseURL: up.BaseURL("kimi"), APIKey: keys["stillbad"], Models: []string{"kimi-k2.6"}},
		{Name: "healthy", Provider: "deepseek", BaseURL: up.BaseURL("deepseek"), APIKey: keys["healthy"], Models: []string{"deepseek-flash"}},
	})
	r := l.run(t, "", "batch", "submit", csvPath, "--host", "prod", "--wait", "--interval", "200ms")
	if r.code != 0 {
		t.Fatalf("batch submit: exit %d", r.code)
	}
	verify := func() result {
		t.Helper()
		r := l.run(t, "", "accounts", "verify", "--host", "prod", "--wait", "--interval", "200ms", "--timeout", "2m")
		if r.code != 0 || !strings.Contains(r.stdout, ": completed") {
			t.Fatalf("accounts verify: exit %d", r.code)
		}
		checkNoSecrets(t, r, secrets...)
		return r
	}

	// All healthy; balances read and shown with their currency.
	verify()
	r = l.run(t, "", "accounts", "list", "--host", "prod")
	if r.code != 0 || strings.Count(r.stdout, "healthy") != 3 || strings.Count(r.stdout, "100.00 CNY") != 3 {
		t.Fatalf("accounts list: exit %d", r.code)
	}

	// Two keys run out of money: failing, no_quota, parked; the healthy one untouched.
	up.SetMode(keys["recovers"], upstreamsim.ModeNoQuota)
	up.SetMode(keys["stillbad"], upstreamsim.ModeNoQuota)
	verify()
	r = l.run(t, "", "accounts", "list", "--host", "prod", "--failing")
	if r.code != 0 || strings.Count(r.stdout, "no_quota") < 2 || strings.Count(r.stdout, "parked") != 2 || strings.Contains(r.stdout, "healthy") {
		t.Fatalf("accounts list --failing: exit %d", r.code)
	}
	if strings.Count(r.stdout, "0.00 CNY (low)") != 2 {
		t.Errorf("the empty balances are not shown as low")
	}
	checkNoSecrets(t, r, secrets...)
	schedulable := func() map[string]bool {
		out := map[string]bool{}
		for _, a := range l.sims.Host.State().Accounts {
			for name, k := range keys {
				if strings.Contains(a.Name, k[len(k)-4:]) {
					out[name] = a.Schedulable && a.Status == "active"
				}
			}
		}
		return out
	}
	if s := schedulable(); s["recovers"] || s["stillbad"] || !s["healthy"] {
		t.Fatalf("host accounts after parking: %v", s)
	}

	// One upstream recovers: made schedulable again and proven; the other stays parked.
	up.SetMode(keys["recovers"], upstreamsim.ModeOK)
	verify()
	if s := schedulable(); !s["recovers"] || s["stillbad"] || !s["healthy"] {
		t.Fatalf("host accounts after the recovery: %v", s)
	}
	r = l.run(t, "", "accounts", "list", "--host", "prod")
	itemOf := func(out, key string) string {
		for _, ln := range strings.Split(out, "\n") {
			if strings.Contains(ln, key[len(key)-4:]) {
				return strings.Fields(ln)[0]
			}
		}
		t.Fatalf("no row for the key ending %s", key[len(key)-4:])
		return ""
	}
	recovered := itemOf(r.stdout, keys["recovers"])
	r = l.run(t, "", "accounts", "history", recovered)
	if r.code != 0 || !strings.Contains(r.stdout, "recovered (set_schedulable) proven [undoable]") || !strings.Contains(r.stdout, "parked (set_unschedulable)") {
		t.Fatalf("accounts history: exit %d", r.code)
	}
	if !strings.Contains(r.stdout, "▁█▁") {
		t.Errorf("the history sparkline is not healthy, failing, healthy")
	}
	checkNoSecrets(t, r, secrets...)

	// Every event reaches the receiver once: the batch, two failing accounts, two low
	// balances, one recovery.
	want := map[string]int{"batch_finished": 1, "account_failing": 2, "balance_low": 2, "recovery_done": 1}
	deadline := time.Now().Add(90 * time.Second) // the upkeep announces batches every 30 s
	for {
		_, types, _ := rcv.snapshot()
		done := true
		for k, n := range want {
			done = done && types[k] >= n
		}
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	ids, types, verified := rcv.snapshot()
	for k, n := range want {
		if types[k] != n {
			t.Errorf("%s: %d events delivered, want %d (all: %v)", k, types[k], n, types)
		}
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("event %s delivered %d times", id, n)
		}
	}
	if verified != len(ids) {
		t.Errorf("%d of %d deliveries carry a valid signature", verified, len(ids))
	}

	// Undo the recovery: the account is set unschedulable again.
	m := regexp.MustCompile(`recovered \(set_schedulable\) proven \[undoable\]\s+(\S+)`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatal("no check ID for the recovery in the history")
	}
	r = l.run(t, "", "accounts", "undo", m[1], "--wait", "--interval", "200ms", "--timeout", "1m")
	if r.code != 0 || !strings.Contains(r.stdout, ": done") {
		t.Fatalf("accounts undo: exit %d", r.code)
	}
	if s := schedulable(); s["recovers"] {
		t.Fatal("the undone recovery left the account schedulable")
	}
	r = l.run(t, "", "accounts", "undo", m[1])
	if r.code != ExitFailed || !strings.Contains(r.stderr, "already_undone") {
		t.Errorf("a second undo: exit %d", r.code)
	}
}
