package upstream_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/catalog"
	"github.com/cn-relay-manager/cn-relay-manager/internal/evidence"
	"github.com/cn-relay-manager/cn-relay-manager/internal/failure"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/upstreamsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/upstream"
)

// fileTransport answers every request with one recorded body and remembers the URL asked.
type fileTransport struct {
	mu     sync.Mutex
	status int
	body   []byte
	urls   []string
}

func (f *fileTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	f.urls = append(f.urls, r.URL.String())
	f.mu.Unlock()
	return &http.Response{StatusCode: f.status, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(f.body)), Request: r}, nil
}

func fptr(v float64) *float64 { return &v }

func TestBalanceRecordedShapes(t *testing.T) {
	tests := []struct {
		file, base, provider string
		wantURL              string
		amount               float64
		currency             string
		granted, toppedUp    *float64
		available            bool
		others               []upstream.Amount
		raw                  map[string]string
	}{
		{file: "deepseek.json", base: "https://api.deepseek.com", provider: "deepseek",
			wantURL: "https://api.deepseek.com/user/balance", amount: 110, currency: "CNY",
			granted: fptr(10), toppedUp: fptr(100), available: true,
			raw: map[string]string{"balance_infos[0].total_balance": "110.00", "is_available": "true"}},
		// A /v1 base still reads the balance at the root.
		{file: "deepseek-numbers.json", base: "https://api.deepseek.com/v1", provider: "",
			wantURL: "https://api.deepseek.com/user/balance", amount: 110, currency: "CNY",
			granted: fptr(10), toppedUp: fptr(100), available: true,
			raw: map[string]string{"balance_infos[0].granted_balance": "10.00"}},
		{file: "deepseek-two-currencies.json", base: "https://api.deepseek.com", provider: "deepseek",
			wantURL: "https://api.deepseek.com/user/balance", amount: 0, currency: "USD",
			granted: fptr(0), toppedUp: fptr(0), available: false,
			others: []upstream.Amount{{Currency: "CNY", Value: 3.5}},
			raw:    map[string]string{"balance_infos[1].currency": "CNY", "is_available": "false"}},
		{file: "kimi.json", base: "https://api.moonshot.cn/v1", provider: "",
			wantURL: "https://api.moonshot.cn/v1/users/me/balance", amount: 49.58894, currency: "CNY",
			granted: fptr(46.58893), toppedUp: fptr(3.00001), available: true,
			raw: map[string]string{"data.available_balance": "49.58894", "data.cash_balance": "3.00001"}},
		// The international site bills in USD and says so nowhere in the answer.
		{file: "kimi.json", base: "https://api.moonshot.ai/v1", provider: "kimi",
			wantURL: "https://api.moonshot.ai/v1/users/me/balance", amount: 49.58894, currency: "USD",
			granted: fptr(46.58893), toppedUp: fptr(3.00001), available: true},
		{file: "kimi-arrears.json", base: "https://api.moonshot.cn/v1", provider: "kimi",
			wantURL: "https://api.moonshot.cn/v1/users/me/balance", amount: 0, currency: "CNY",
			granted: fptr(0), toppedUp: fptr(-1.25), available: false,
			raw: map[string]string{"data.cash_balance": "-1.25"}},
		{file: "siliconflow.json", base: "https://api.siliconflow.cn/v1", provider: "siliconflow",
			wantURL: "https://api.siliconflow.cn/v1/user/info", amount: 88.88, currency: "CNY",
			granted: fptr(0.88), toppedUp: fptr(88), available: true,
			raw: map[string]string{"data.totalBalance": "88.88", "data.chargeBalance": "88.00", "data.balance": "0.88"}},
		{file: "siliconflow.json", base: "https://api.siliconflow.com/v1", provider: "siliconflow",
			wantURL: "https://api.siliconflow.com/v1/user/info", amount: 88.88, currency: "USD",
			granted: fptr(0.88), toppedUp: fptr(88), available: true},
		{file: "stepfun.json", base: "https://api.stepfun.com/v1", provider: "stepfun",
			wantURL: "https://api.stepfun.com/v1/accounts", amount: 25.5, currency: "CNY", available: true,
			raw: map[string]string{"balance": "25.5", "total_cash_balance": "20", "total_voucher_balance": "5.5", "type": "prepaid"}},
		{file: "stepfun-postpaid.json", base: "https://api.stepfun.ai/v1", provider: "stepfun",
			wantURL: "https://api.stepfun.ai/v1/accounts", amount: 0, currency: "USD", available: true},
	}
	for _, tt := range tests {
		t.Run(tt.file+" "+tt.base, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", "balance", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			ft := &fileTransport{status: 200, body: body}
			p := upstream.NewProber(upstream.Options{HTTPClient: &http.Client{Transport: ft}})
			before := time.Now().UTC()
			b, err := p.Balance(context.Background(), tt.base, keyOK, tt.provider)
			if err != nil {
				t.Fatalf("Balance: %v", err)
			}
			if len(ft.urls) != 1 || ft.urls[0] != tt.wantURL {
				t.Errorf("asked %v, want %s", ft.urls, tt.wantURL)
			}
			if b.Amount != tt.amount || b.Currency != tt.currency || b.Available != tt.available {
				t.Errorf("got %v %s available=%v, want %v %s available=%v", b.Amount, b.Currency, b.Available, tt.amount, tt.currency, tt.available)
			}
			if !eqPtr(b.Granted, tt.granted) || !eqPtr(b.ToppedUp, tt.toppedUp) {
				t.Errorf("granted %v topped up %v, want %v %v", deref(b.Granted), deref(b.ToppedUp), deref(tt.granted), deref(tt.toppedUp))
			}
			if len(b.Others) != len(tt.others) || (len(tt.others) > 0 && b.Others[0] != tt.others[0]) {
				t.Errorf("others %v, want %v", b.Others, tt.others)
			}
			for k, v := range tt.raw {
				if b.Raw[k] != v {
					t.Errorf("raw[%s] = %q, want %q (raw %v)", k, b.Raw[k], v, b.Raw)
				}
			}
			for k, v := range b.Raw {
				if strings.Contains(v, "holder") || strings.Contains(k, "email") || strings.Contains(k, "name") {
					t.Errorf("raw keeps account holder details: %s=%s", k, v)
				}
			}
			if b.ReadAt.Before(before) || b.ReadAt.Location() != time.UTC {
				t.Errorf("ReadAt %v", b.ReadAt)
			}
			if b.Endpoint == "" || !strings.HasSuffix(tt.wantURL, b.Endpoint) {
				t.Errorf("Endpoint %q", b.Endpoint)
			}
		})
	}
}

func eqPtr(a, b *float64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestBalanceAgainstSimulator(t *testing.T) {
	s := startSim(t, upstreamsim.Options{})
	p := upstream.NewProber(upstream.Options{})
	ctx := context.Background()
	for _, id := range []string{"deepseek", "kimi", "siliconflow", "stepfun"} {
		t.Run(id, func(t *testing.T) {
			if !upstream.BalanceSupported(id) {
				t.Fatalf("BalanceSupported(%s) = false", id)
			}
			key := "sk-simbal-" + id + "-0123456789abcdef"
			s.AddKey(key, upstreamsim.ModeOK)

			b, err := p.Balance(ctx, s.BaseURL(id), key, id)
			if err != nil {
				t.Fatalf("default balance: %v", err)
			}
			if b.Amount != upstreamsim.DefaultBalance || b.Currency != "CNY" || !b.Available || b.ProviderID != id {
				t.Errorf("default balance %+v", b)
			}

			s.SetBalance(key, 3.25)
			b, err = p.Balance(ctx, s.BaseURL(id), key, id)
			if err != nil {
				t.Fatal(err)
			}
			if b.Amount != 3.25 || !b.Available || !b.Below(5) || b.Below(3) {
				t.Errorf("after SetBalance(3.25): %+v", b)
			}

			// Out of money: the balance says so and inference answers no_quota.
			s.SetBalance(key, 0)
			b, err = p.Balance(ctx, s.BaseURL(id), key, id)
			if err != nil {
				t.Fatal(err)
			}
			if b.Amount != 0 || b.Available || !b.Below(0) {
				t.Errorf("after SetBalance(0): %+v", b)
			}
			model := firstChatModel(t, id)
			if err := p.Chat(ctx, s.BaseURL(id), key, id, model); failure.ClassOf(err) != failure.NoQuota {
				t.Errorf("chat with zero balance: %v, want no_quota", err)
			}

			// Topped up again: inference works.
			s.SetBalance(key, 50)
			if err := p.Chat(ctx, s.BaseURL(id), key, id, model); err != nil {
				t.Errorf("chat after top-up: %v", err)
			}

			// A key switched to no-quota mode has nothing to spend, and back.
			s.SetMode(key, upstreamsim.ModeNoQuota)
			b, err = p.Balance(ctx, s.BaseURL(id), key, id)
			if err != nil || b.Amount != 0 || b.Available {
				t.Errorf("no-quota mode: %+v, %v", b, err)
			}
			s.SetMode(key, upstreamsim.ModeOK)
			b, err = p.Balance(ctx, s.BaseURL(id), key, id)
			if err != nil || b.Amount != 50 {
				t.Errorf("back to ok: %+v, %v", b, err)
			}
		})
	}
}

func firstChatModel(t *testing.T, providerID string) string {
	t.Helper()
	for _, p := range catalog.Default().Providers() {
		if p.ID != providerID {
			continue
		}
		for _, m := range p.Models {
			if m.Chat && !m.Retired && !m.Deprecated && len(m.Regions) == 0 && len(m.Plans) == 0 {
				return m.ID
			}
		}
	}
	t.Fatalf("no chat model for %s", providerID)
	return ""
}

func TestBalanceErrorsClassified(t *testing.T) {
	s := startSim(t, upstreamsim.Options{})
	p := upstream.NewProber(upstream.Options{})
	ctx := context.Background()
	for _, id := range []string{"deepseek", "kimi", "siliconflow", "stepfun"} {
		for key, want := range map[string]failure.Class{
			keyInvalid: failure.InvalidKey,
			keyUnknown: failure.InvalidKey,
			keyBanned:  failure.KeyBanned,
		} {
			_, err := p.Balance(ctx, s.BaseURL(id), key, id)
			if failure.ClassOf(err) != want {
				t.Errorf("%s %s: %v, want %s", id, key[:12], err, want)
			}
			if err != nil {
				assertNoKey(t, id, err.Error())
			}
		}
		// Rate limits and errors inside HTTP 200 concern inference, not the balance.
		for _, key := range []string{keyRate, key200, keyChat} {
			if _, err := p.Balance(ctx, s.BaseURL(id), key, id); err != nil {
				t.Errorf("%s %s: %v", id, key[:12], err)
			}
		}
	}
}

func TestBalanceUnsupported(t *testing.T) {
	s := startSim(t, upstreamsim.Options{})
	p := upstream.NewProber(upstream.Options{})
	ctx := context.Background()
	for _, id := range []string{"glm", "minimax", "qwen", "kimi_coding", "openrouter", "openai_compatible"} {
		calls := s.Calls()
		_, err := p.Balance(ctx, s.BaseURL(id), keyOK, id)
		var ue *upstream.BalanceUnsupportedError
		if !errors.Is(err, upstream.ErrBalanceUnsupported) || !errors.As(err, &ue) || ue.ProviderID == "" {
			t.Errorf("%s: %v, want unsupported", id, err)
		}
		if s.Calls() != calls {
			t.Errorf("%s: %d calls for an unsupported provider", id, s.Calls()-calls)
		}
		if upstream.BalanceSupported(id) {
			t.Errorf("BalanceSupported(%s) = true", id)
		}
	}

	// A plan base is billed by the plan.
	ft := &fileTransport{status: 200, body: []byte(`{}`)}
	pp := upstream.NewProber(upstream.Options{HTTPClient: &http.Client{Transport: ft}})
	_, err := pp.Balance(ctx, "https://api.stepfun.com/step_plan/v1", keyOK, "")
	if !errors.Is(err, upstream.ErrBalanceUnsupported) || len(ft.urls) != 0 {
		t.Errorf("step plan: %v, calls %v", err, ft.urls)
	}

	// A retired endpoint (SiliconFlow's China site) is not a broken key.
	ft = &fileTransport{status: 404, body: []byte(`{"code":404,"message":"Not Found","data":null}`)}
	pp = upstream.NewProber(upstream.Options{HTTPClient: &http.Client{Transport: ft}})
	_, err = pp.Balance(ctx, "https://api.siliconflow.cn/v1", keyOK, "siliconflow")
	if !errors.Is(err, upstream.ErrBalanceUnsupported) || failure.ClassOf(err) != failure.Internal {
		t.Errorf("404: %v, want unsupported", err)
	}
}

func TestBalanceOddAnswers(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name, base, provider string
		status               int
		body                 string
		class                failure.Class
	}{
		{"html", "https://api.deepseek.com", "deepseek", 200, `<html>maintenance</html>`, failure.UpstreamIncompatible},
		{"no fields", "https://api.deepseek.com", "deepseek", 200, `{"object":"list"}`, failure.UpstreamIncompatible},
		{"kimi code", "https://api.moonshot.cn/v1", "kimi", 200, `{"code":5,"data":null,"scode":"0x5","status":false}`, failure.UpstreamIncompatible},
		{"bad amount", "https://api.siliconflow.cn/v1", "siliconflow", 200, `{"code":20000,"data":{"totalBalance":"lots"}}`, failure.UpstreamIncompatible},
		{"5xx", "https://api.stepfun.com/v1", "stepfun", 503, `{"error":{"message":"overloaded"}}`, failure.UpstreamUnreachable},
		{"kimi 401", "https://api.moonshot.cn/v1", "kimi", 401, `{"error":{"message":"Invalid Authentication","type":"invalid_authentication_error"}}`, failure.InvalidKey},
	} {
		ft := &fileTransport{status: tt.status, body: []byte(tt.body)}
		p := upstream.NewProber(upstream.Options{HTTPClient: &http.Client{Transport: ft}})
		_, err := p.Balance(ctx, tt.base, keyOK, tt.provider)
		if failure.ClassOf(err) != tt.class {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.class)
		}
	}
}

func TestBalanceEvidenceOmitsAccountHolder(t *testing.T) {
	s := startSim(t, upstreamsim.Options{})
	p := upstream.NewProber(upstream.Options{})
	rec := &evidence.Recorder{}
	ctx := evidence.WithRecorder(context.Background(), rec)
	if _, err := p.Balance(ctx, s.BaseURL("siliconflow"), keyOK, "siliconflow"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Balance(ctx, s.BaseURL("deepseek"), keyOK, "deepseek"); err != nil {
		t.Fatal(err)
	}
	ex := rec.Exchanges()
	if len(ex) != 2 {
		t.Fatalf("%d exchanges", len(ex))
	}
	if ex[0].Path != "/siliconflow/v1/user/info" || ex[0].Status != 200 || strings.Contains(ex[0].Preview, "sim-holder") {
		t.Errorf("siliconflow evidence %+v", ex[0])
	}
	if ex[1].Path != "/deepseek/user/balance" || !strings.Contains(ex[1].Preview, "total_balance") {
		t.Errorf("deepseek evidence %+v", ex[1])
	}
	for _, e := range ex {
		assertNoKey(t, "evidence", e.Preview+e.Error)
	}
}

func TestCheck(t *testing.T) {
	s := startSim(t, upstreamsim.Options{})
	p := upstream.NewProber(upstream.Options{})
	ctx := context.Background()
	model := firstChatModel(t, "deepseek")
	calls := s.Calls()
	if err := p.Check(ctx, s.BaseURL("deepseek"), keyOK, "deepseek", model); err != nil {
		t.Fatalf("check: %v", err)
	}
	if got := s.Calls() - calls; got != 2 {
		t.Errorf("check made %d calls, want 2 (models + chat)", got)
	}
	for key, want := range map[string]failure.Class{keyInvalid: failure.InvalidKey, keyBanned: failure.KeyBanned,
		keyQuota: failure.NoQuota, keyRate: failure.RateLimited} {
		if err := p.Check(ctx, s.BaseURL("deepseek"), key, "deepseek", model); failure.ClassOf(err) != want {
			t.Errorf("%s: %v, want %s", key[:12], err, want)
		}
	}
	// A key whose quota runs out after import fails the next check and passes once topped up.
	key := "sk-simcheck-0123456789abcdef"
	s.AddKey(key, upstreamsim.ModeOK)
	s.SetMode(key, upstreamsim.ModeNoQuota)
	if err := p.Check(ctx, s.BaseURL("deepseek"), key, "deepseek", model); failure.ClassOf(err) != failure.NoQuota {
		t.Errorf("no quota: %v", err)
	}
	s.SetMode(key, upstreamsim.ModeOK)
	if err := p.Check(ctx, s.BaseURL("deepseek"), key, "deepseek", model); err != nil {
		t.Errorf("recovered: %v", err)
	}
	if err := p.Check(ctx, s.BaseURL("deepseek"), keyOK, "deepseek", "no-such-model"); failure.ClassOf(err) != failure.ModelNotFound {
		t.Errorf("unknown model: %v", err)
	}
	// kimi_coding lists no models: the chat decides.
	if err := p.Check(ctx, s.BaseURL("kimi_coding"), keyOK, "kimi_coding", firstChatModel(t, "kimi_coding")); err != nil {
		t.Errorf("kimi_coding: %v", err)
	}
}
