package notify

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

const (
	feishuURL   = "https://open.feishu.cn/open-apis/bot/v2/hook/2b7c0f1e-93aa-4e55-b1f4-TOKENFEISHU01"
	dingTalkURL = "https://oapi.dingtalk.com/robot/send?access_token=TOKENDINGTALK0123456789abcdef"
	weComURL    = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-TOKENWECOM-0ec2sifa5aaa"
	slackURL    = "https://hooks.slack.com/services/T000SLACK/B000SLACK/TOKENSLACK0123456789"
	genericURL  = "https://ops.example.com/hooks/crm/TOKENGENERIC0123456789"
	secretValue = "SECsigningsecret0123456789abcdef"
)

var tokens = []string{"TOKENFEISHU01", "TOKENDINGTALK", "TOKENWECOM", "TOKENSLACK", "TOKENGENERIC", secretValue}

func noCredentials(t *testing.T, where, text string) {
	t.Helper()
	for _, tok := range tokens {
		if strings.Contains(text, tok) {
			t.Errorf("%s leaks a credential (%s): %s", where, tok, text)
		}
	}
}

var at = time.Date(2026, 12, 1, 8, 30, 0, 0, time.UTC)

func events() []Event {
	since := at.Add(-2 * time.Hour)
	return []Event{
		{ID: "evt-batch-1", Type: BatchFinished, At: at, Host: "prod", URL: "https://crm.example.com/batches/b1",
			Batch: &Batch{ID: "b1", Name: "october keys", Status: "partial", Total: 20, Ready: 18, Failed: 2,
				Classes: map[string]int{"no_quota": 1, "invalid_key": 1}}},
		{ID: "evt-fail-1", Type: AccountFailing, At: at, Host: "prod",
			Account: &Account{HostAccountID: 42, Name: "crm-acc-b1-3-i3", ItemID: "i3", Provider: "deepseek",
				KeyMasked: "sk-abc…wxyz", Health: "failing", Class: "no_quota",
				Reason: "DeepSeek answered HTTP 402: Insufficient Balance", Since: &since, Parked: true}},
		{ID: "evt-bal-1", Type: BalanceLow, At: at, Host: "prod",
			Account: &Account{HostAccountID: 43, Name: "crm-acc-b1-4-i4", Provider: "kimi"},
			Balance: &Balance{Amount: 3.2, Currency: "CNY", Threshold: 10, ReadAt: at}},
		{ID: "evt-rec-1", Type: RecoveryDone, At: at, Host: "prod",
			Account:  &Account{HostAccountID: 42, Name: "crm-acc-b1-3-i3", Provider: "deepseek"},
			Recovery: &Recovery{Actions: []string{"clear_error", "set_schedulable"}, Proven: true}},
	}
}

func targets(secret string) []Target {
	return []Target{
		{Kind: Generic, URL: genericURL, Secret: secret},
		{Kind: Feishu, URL: feishuURL, Secret: secret},
		{Kind: DingTalk, URL: dingTalkURL, Secret: secret},
		{Kind: WeCom, URL: weComURL},
		{Kind: Slack, URL: slackURL},
	}
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, b)
	}
	return v
}

func TestFormatEveryEventEveryFormat(t *testing.T) {
	for _, secret := range []string{"", secretValue} {
		for _, tg := range targets(secret) {
			for _, e := range events() {
				r, err := Format(e, tg, at)
				if err != nil {
					t.Fatalf("%s %s: %v", tg.Kind, e.Type, err)
				}
				if r.DeliveryID != e.ID || r.Header.Get(HeaderDelivery) != e.ID || r.Header.Get(HeaderEvent) != string(e.Type) {
					t.Errorf("%s %s: delivery id %q header %q", tg.Kind, e.Type, r.DeliveryID, r.Header.Get(HeaderDelivery))
				}
				if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
					t.Errorf("%s: content type %q", tg.Kind, r.Header.Get("Content-Type"))
				}
				body := string(r.Body)
				if !strings.Contains(body, TitlePrefix) {
					t.Errorf("%s %s: no title prefix: %s", tg.Kind, e.Type, body)
				}
				if !strings.Contains(body, e.ID) {
					t.Errorf("%s %s: body does not show the delivery id", tg.Kind, e.Type)
				}
				noCredentials(t, string(tg.Kind)+" body", body)
				noCredentials(t, "request string", r.String())
				decode(t, r.Body)

				again, err := Format(e, tg, at)
				if err != nil || !bytes.Equal(again.Body, r.Body) || again.URL != r.URL {
					t.Errorf("%s %s: Format is not deterministic", tg.Kind, e.Type)
				}
			}
		}
	}
}

func TestGenericBody(t *testing.T) {
	e := events()[1]
	r, err := Format(e, Target{Kind: Generic, URL: genericURL, Secret: secretValue}, at)
	if err != nil {
		t.Fatal(err)
	}
	v := decode(t, r.Body)
	if v["id"] != "evt-fail-1" || v["type"] != "account_failing" || v["host"] != "prod" || v["occurred_at"] != "2026-12-01T08:30:00Z" {
		t.Errorf("generic envelope %v", v)
	}
	acct, _ := v["account"].(map[string]any)
	if acct["class"] != "no_quota" || acct["host_account_id"] != float64(42) || acct["parked"] != true {
		t.Errorf("account %v", acct)
	}
	if !strings.Contains(v["text"].(string), "Failure class: no_quota") || !strings.Contains(v["title"].(string), "set unschedulable") {
		t.Errorf("title/text %q / %q", v["title"], v["text"])
	}
	if r.URL != genericURL {
		t.Errorf("generic URL changed")
	}

	// The receiver's check: signature over timestamp and body.
	if err := VerifyGeneric(secretValue, r.Header, r.Body, at.Add(time.Minute), 5*time.Minute); err != nil {
		t.Errorf("verify: %v", err)
	}
	if err := VerifyGeneric("other-secret", r.Header, r.Body, at, 5*time.Minute); !errors.Is(err, ErrBadSignature) {
		t.Errorf("wrong secret: %v", err)
	}
	tampered := bytes.Replace(r.Body, []byte("no_quota"), []byte("rate_limited"), 1)
	if err := VerifyGeneric(secretValue, r.Header, tampered, at, 5*time.Minute); !errors.Is(err, ErrBadSignature) {
		t.Errorf("tampered body: %v", err)
	}
	if err := VerifyGeneric(secretValue, r.Header, r.Body, at.Add(time.Hour), 5*time.Minute); !errors.Is(err, ErrStale) {
		t.Errorf("replay an hour later: %v", err)
	}
	unsigned, _ := Format(e, Target{Kind: Generic, URL: genericURL}, at)
	if err := VerifyGeneric(secretValue, unsigned.Header, unsigned.Body, at, time.Minute); !errors.Is(err, ErrUnsigned) {
		t.Errorf("unsigned: %v", err)
	}
}

func TestFeishuBody(t *testing.T) {
	r, err := Format(events()[0], Target{Kind: Feishu, URL: feishuURL, Secret: secretValue, Lang: "zh"}, at)
	if err != nil {
		t.Fatal(err)
	}
	v := decode(t, r.Body)
	if v["msg_type"] != "post" {
		t.Errorf("msg_type %v", v["msg_type"])
	}
	post := v["content"].(map[string]any)["post"].(map[string]any)["zh_cn"].(map[string]any)
	if title := post["title"].(string); !strings.Contains(title, "批次 october keys 已完成：18 个就绪，2 个失败") {
		t.Errorf("title %q", title)
	}
	lines := post["content"].([]any)
	var link map[string]any
	for _, l := range lines {
		seg := l.([]any)[0].(map[string]any)
		if seg["tag"] == "a" {
			link = seg
		}
	}
	if link == nil || link["href"] != "https://crm.example.com/batches/b1" {
		t.Errorf("no link: %v", lines)
	}
	// Signature: timestamp in seconds, HMAC-SHA256 keyed by timestamp+"\n"+secret over nothing.
	ts := strconv.FormatInt(at.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(ts+"\n"+secretValue))
	if v["timestamp"] != ts || v["sign"] != base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
		t.Errorf("timestamp %v sign %v", v["timestamp"], v["sign"])
	}
	if r.URL != feishuURL {
		t.Errorf("feishu URL changed")
	}
	unsigned, _ := Format(events()[0], Target{Kind: Feishu, URL: feishuURL}, at)
	if u := decode(t, unsigned.Body); u["sign"] != nil || u["timestamp"] != nil {
		t.Errorf("unsigned feishu body carries a signature: %v", u)
	}
}

func TestDingTalkBody(t *testing.T) {
	r, err := Format(events()[2], Target{Kind: DingTalk, URL: dingTalkURL, Secret: secretValue}, at)
	if err != nil {
		t.Fatal(err)
	}
	v := decode(t, r.Body)
	md := v["markdown"].(map[string]any)
	if v["msgtype"] != "markdown" || !strings.Contains(md["title"].(string), "Balance low: crm-acc-b1-4-i4 has 3.20 CNY left (threshold 10.00)") {
		t.Errorf("body %v", v)
	}
	if !strings.Contains(md["text"].(string), "- **Balance**: 3.20 CNY") {
		t.Errorf("text %q", md["text"])
	}
	u, err := url.Parse(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	ts := strconv.FormatInt(at.UnixMilli(), 10)
	mac := hmac.New(sha256.New, []byte(secretValue))
	mac.Write([]byte(ts + "\n" + secretValue))
	if q.Get("access_token") != "TOKENDINGTALK0123456789abcdef" || q.Get("timestamp") != ts ||
		q.Get("sign") != base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
		t.Errorf("signed query %v", q)
	}
	// The signature is URL-encoded in the query (base64 has +, / and =).
	signRaw, _, _ := strings.Cut(u.RawQuery[strings.Index(u.RawQuery, "sign=")+len("sign="):], "&")
	if strings.ContainsAny(signRaw, "+/=") {
		t.Errorf("sign not URL-encoded: %s", signRaw)
	}
	unsigned, _ := Format(events()[2], Target{Kind: DingTalk, URL: dingTalkURL}, at)
	if unsigned.URL != dingTalkURL {
		t.Errorf("unsigned DingTalk URL changed")
	}
}

func TestWeComAndSlackBodies(t *testing.T) {
	e := events()[1]
	long := strings.Repeat("余额不足 ", 2000)
	e.Account.Reason = long + "<script>&"
	r, err := Format(e, Target{Kind: WeCom, URL: weComURL, Lang: "zh"}, at)
	if err != nil {
		t.Fatal(err)
	}
	v := decode(t, r.Body)
	content := v["markdown"].(map[string]any)["content"].(string)
	if v["msgtype"] != "markdown" || len(content) > 4096 || !utf8.ValidString(content) {
		t.Errorf("wecom content %d bytes", len(content))
	}
	if strings.Contains(string(r.Body), `\u003e`) || !strings.Contains(string(r.Body), `\n> `) {
		t.Errorf("wecom markdown is HTML-escaped: %.200s", r.Body)
	}
	if !strings.Contains(content, "账号 crm-acc-b1-3-i3 异常（no_quota），已设为不可调度") {
		t.Errorf("wecom content %q", content[:200])
	}

	e.Account.Reason = "bad <script> & co"
	r, err = Format(e, Target{Kind: Slack, URL: slackURL}, at)
	if err != nil {
		t.Fatal(err)
	}
	v = decode(t, r.Body)
	blocks := v["blocks"].([]any)
	header := blocks[0].(map[string]any)["text"].(map[string]any)["text"].(string)
	section := blocks[1].(map[string]any)["text"].(map[string]any)["text"].(string)
	if v["text"] != header || utf8.RuneCountInString(header) > 150 {
		t.Errorf("header %q fallback %q", header, v["text"])
	}
	if !strings.Contains(section, "*Reason:* bad &lt;script&gt; &amp; co") {
		t.Errorf("section %q", section)
	}
}

func TestTitleBounded(t *testing.T) {
	e := events()[1]
	e.Account.Name = strings.Repeat("n", 500)
	for _, tg := range targets("") {
		r, err := Format(e, tg, at)
		if err != nil {
			t.Fatal(err)
		}
		if tg.Kind == Slack {
			v := decode(t, r.Body)
			if n := utf8.RuneCountInString(v["text"].(string)); n > 150 {
				t.Errorf("slack title %d runes", n)
			}
		}
	}
}

func TestFormatRejects(t *testing.T) {
	good := events()[0]
	for name, tc := range map[string]struct {
		e Event
		t Target
	}{
		"unknown format":      {good, Target{Kind: "teams", URL: genericURL}},
		"no scheme":           {good, Target{Kind: Generic, URL: "ops.example.com/hooks/TOKENGENERIC0123456789"}},
		"ftp":                 {good, Target{Kind: Generic, URL: "ftp://ops.example.com/TOKENGENERIC0123456789"}},
		"wecom secret":        {good, Target{Kind: WeCom, URL: weComURL, Secret: secretValue}},
		"slack secret":        {good, Target{Kind: Slack, URL: slackURL, Secret: secretValue}},
		"dingtalk no token":   {good, Target{Kind: DingTalk, URL: "https://oapi.dingtalk.com/robot/send"}},
		"language":            {good, Target{Kind: Generic, URL: genericURL, Lang: "fr"}},
		"no id":               {Event{Type: BatchFinished, Batch: &Batch{ID: "b"}}, Target{Kind: Generic, URL: genericURL}},
		"unknown type":        {Event{ID: "x", Type: "deleted"}, Target{Kind: Generic, URL: genericURL}},
		"batch without batch": {Event{ID: "x", Type: BatchFinished}, Target{Kind: Generic, URL: genericURL}},
		"failing no account":  {Event{ID: "x", Type: AccountFailing}, Target{Kind: Generic, URL: genericURL}},
		"balance no balance":  {Event{ID: "x", Type: BalanceLow, Account: &Account{}}, Target{Kind: Generic, URL: genericURL}},
		"recovery no actions": {Event{ID: "x", Type: RecoveryDone, Account: &Account{}}, Target{Kind: Generic, URL: genericURL}},
	} {
		_, err := Format(tc.e, tc.t, at)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		noCredentials(t, name, err.Error())
	}
}

func TestTargetNeverShowsCredentials(t *testing.T) {
	for _, tg := range targets(secretValue) {
		tg.Secret = secretValue
		b, err := json.Marshal(tg)
		if err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		slog.New(slog.NewJSONHandler(&logs, nil)).Info("target", "t", tg)
		for where, s := range map[string]string{
			"String": tg.String(), "%v": fmt.Sprintf("%v", tg), "%+v": fmt.Sprintf("%+v", tg),
			"JSON": string(b), "slog": logs.String(), "%#v": fmt.Sprintf("%#v", tg),
		} {
			noCredentials(t, string(tg.Kind)+" "+where, s)
			if !strings.Contains(s, RedactURL(tg.URL)) {
				t.Errorf("%s %s does not name the destination: %s", tg.Kind, where, s)
			}
		}
	}
	if got := RedactURL(dingTalkURL); got != "https://oapi.dingtalk.com" {
		t.Errorf("RedactURL = %q", got)
	}
	if got := RedactURL("https://user:pass@hooks.example.com:8443/x?y=z"); got != "https://hooks.example.com:8443" {
		t.Errorf("RedactURL with userinfo = %q", got)
	}
	if got := RedactURL("::not a url"); got != "(webhook)" {
		t.Errorf("RedactURL(bad) = %q", got)
	}
}
