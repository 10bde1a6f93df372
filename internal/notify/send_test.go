package notify

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// receiver answers every delivery with one canned answer.
func receiver(t *testing.T, status int, body string, header map[string]string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// targetAt is a target of kind k whose URL points at srv but carries a token like the
// platform's.
func targetAt(k Kind, srv *httptest.Server) Target {
	switch k {
	case Feishu:
		return Target{Kind: k, URL: srv.URL + "/open-apis/bot/v2/hook/2b7c0f1e-TOKENFEISHU01"}
	case DingTalk:
		return Target{Kind: k, URL: srv.URL + "/robot/send?access_token=TOKENDINGTALK0123456789abcdef"}
	case WeCom:
		return Target{Kind: k, URL: srv.URL + "/cgi-bin/webhook/send?key=693a91f6-TOKENWECOM-0ec2"}
	case Slack:
		return Target{Kind: k, URL: srv.URL + "/services/T000/B000/TOKENSLACK0123456789"}
	}
	return Target{Kind: k, URL: srv.URL + "/hooks/TOKENGENERIC0123456789"}
}

func TestSendClassifiesAnswers(t *testing.T) {
	for _, tt := range []struct {
		name       string
		kind       Kind
		status     int
		body       string
		header     map[string]string
		ok         bool
		retry      bool
		code       string
		retryAfter time.Duration
	}{
		{name: "feishu ok", kind: Feishu, status: 200, body: `{"code":0,"msg":"success","data":{},"Extra":null,"StatusCode":0,"StatusMessage":"success"}`, ok: true},
		{name: "feishu sign", kind: Feishu, status: 200, body: `{"code":19021,"data":{},"msg":"sign match fail or timestamp is not within one hour from current time"}`, code: "19021"},
		{name: "feishu keyword", kind: Feishu, status: 200, body: `{"code":19024,"msg":"Key Words Not Found"}`, code: "19024"},
		{name: "feishu bad request", kind: Feishu, status: 400, body: `{"code":9499,"msg":"Bad Request","data":{}}`, code: "9499"},
		{name: "feishu frequency", kind: Feishu, status: 200, body: `{"code":11232,"msg":"frequency limited psm[lark.oapi.app_platform_runtime]appID[1]"}`, retry: true, code: "11232"},
		{name: "feishu gateway 429", kind: Feishu, status: 429, body: `{"code":99991400,"msg":"request trigger frequency limit"}`, header: map[string]string{"Retry-After": "30"}, retry: true, code: "99991400", retryAfter: 30 * time.Second},
		{name: "dingtalk ok", kind: DingTalk, status: 200, body: `{"errcode":0,"errmsg":"ok"}`, ok: true},
		{name: "dingtalk sign", kind: DingTalk, status: 200, body: `{"errcode":310000,"errmsg":"sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]"}`, code: "310000"},
		{name: "dingtalk too fast", kind: DingTalk, status: 200, body: `{"errcode":130101,"errmsg":"send too fast, exceed 20 times per minute"}`, retry: true, code: "130101", retryAfter: 10 * time.Minute},
		{name: "dingtalk token", kind: DingTalk, status: 200, body: `{"errcode":300001,"errmsg":"token is not exist"}`, code: "300001"},
		{name: "wecom ok", kind: WeCom, status: 200, body: `{"errcode":0,"errmsg":"ok"}`, ok: true},
		{name: "wecom freq", kind: WeCom, status: 200, body: `{"errcode":45009,"errmsg":"api freq out of limit, more info at https://open.work.weixin.qq.com/devtool/query?e=45009"}`, retry: true, code: "45009", retryAfter: time.Minute},
		{name: "wecom bad key", kind: WeCom, status: 200, body: `{"errcode":93000,"errmsg":"invalid webhook url, hint: [1]"}`, code: "93000"},
		{name: "wecom busy", kind: WeCom, status: 200, body: `{"errcode":-1,"errmsg":"system busy"}`, retry: true, code: "-1"},
		{name: "feishu not json", kind: Feishu, status: 200, body: `<html>proxy</html>`},
		{name: "slack ok", kind: Slack, status: 200, body: `ok`, ok: true},
		{name: "slack no service", kind: Slack, status: 404, body: `no_service`, code: "no_service"},
		{name: "slack archived", kind: Slack, status: 410, body: `channel_is_archived`, code: "channel_is_archived"},
		{name: "slack payload", kind: Slack, status: 400, body: `invalid_payload`, code: "invalid_payload"},
		{name: "slack rate", kind: Slack, status: 429, body: `rate_limited`, header: map[string]string{"Retry-After": "3"}, retry: true, code: "rate_limited", retryAfter: 3 * time.Second},
		{name: "slack rollup", kind: Slack, status: 500, body: `rollup_error`, retry: true, code: "rollup_error"},
		{name: "generic 204", kind: Generic, status: 204, ok: true},
		{name: "generic 200 any body", kind: Generic, status: 200, body: `{"errcode":5}`, ok: true},
		{name: "generic 400", kind: Generic, status: 400, body: `bad`},
		{name: "generic 401", kind: Generic, status: 401, body: `no`},
		{name: "generic 408", kind: Generic, status: 408, body: ``, retry: true},
		{name: "generic 503", kind: Generic, status: 503, body: `down`, retry: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := receiver(t, tt.status, tt.body, tt.header)
			r, err := Format(events()[0], targetAt(tt.kind, srv), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			err = (&Sender{}).Send(context.Background(), r)
			if tt.ok {
				if err != nil {
					t.Fatalf("want delivered, got %v", err)
				}
				return
			}
			var de *DeliveryError
			if !errors.As(err, &de) {
				t.Fatalf("want *DeliveryError, got %v", err)
			}
			if de.Retryable != tt.retry || IsRetryable(err) != tt.retry || de.Code != tt.code || de.RetryAfter != tt.retryAfter {
				t.Errorf("got retry=%v code=%q after=%v, want %v %q %v (%v)", de.Retryable, de.Code, de.RetryAfter, tt.retry, tt.code, tt.retryAfter, err)
			}
			if de.Kind != tt.kind || de.Dest != srv.URL || de.Status != tt.status {
				t.Errorf("kind %s dest %s status %d", de.Kind, de.Dest, de.Status)
			}
			noCredentials(t, "error", err.Error())
		})
	}
}

func TestSendRedactsCredentials(t *testing.T) {
	// A receiver that echoes the URL it was called at, token and all.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(400)
		_, _ = io.WriteString(w, `{"errcode":40008,"errmsg":"invalid request `+r.URL.String()+` key=`+r.URL.Query().Get("key")+`"}`)
	}))
	defer srv.Close()
	for _, k := range []Kind{WeCom, DingTalk, Generic, Feishu, Slack} {
		tg := targetAt(k, srv)
		if k == DingTalk || k == Feishu {
			tg.Secret = secretValue
		}
		r, err := Format(events()[1], tg, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		err = (&Sender{}).Send(context.Background(), r)
		if err == nil {
			t.Fatalf("%s: delivered", k)
		}
		noCredentials(t, string(k), err.Error())
		if strings.Contains(err.Error(), "sign=") && strings.Contains(err.Error(), "timestamp=") && !strings.Contains(err.Error(), "[redacted]") {
			t.Errorf("%s: signature shown: %v", k, err)
		}
	}

	// Transport failures: net/http names the full URL; the error must not.
	srv2 := httptest.NewServer(http.NotFoundHandler())
	tg := targetAt(WeCom, srv2)
	srv2.Close()
	r, _ := Format(events()[0], tg, time.Now())
	err := (&Sender{Timeout: 2 * time.Second}).Send(context.Background(), r)
	if !IsRetryable(err) {
		t.Errorf("connection refused: %v, want retryable", err)
	}
	noCredentials(t, "transport", err.Error())
	if !strings.Contains(err.Error(), RedactURL(tg.URL)) {
		t.Errorf("transport error does not name the destination: %v", err)
	}
}

func TestSendTimeoutAndCancel(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	r, _ := Format(events()[0], targetAt(Generic, srv), time.Now())

	err := (&Sender{Timeout: 50 * time.Millisecond}).Send(context.Background(), r)
	var de *DeliveryError
	if !errors.As(err, &de) || !de.Retryable || !strings.Contains(de.Message, "timed out") {
		t.Errorf("timeout: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := (&Sender{}).Send(ctx, r); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestSendPostsTheRequest(t *testing.T) {
	got := make(chan *http.Request, 1)
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ = io.ReadAll(r.Body)
		got <- r
		_, _ = io.WriteString(w, `{"errcode":0,"errmsg":"ok"}`)
	}))
	defer srv.Close()
	r, err := Format(events()[3], targetAt(WeCom, srv), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := (&Sender{}).Send(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	req := <-got
	if req.Method != http.MethodPost || req.URL.Query().Get("key") != "693a91f6-TOKENWECOM-0ec2" ||
		req.Header.Get(HeaderDelivery) != "evt-rec-1" || req.Header.Get("User-Agent") == "" ||
		string(body) != string(r.Body) {
		t.Errorf("request %s %s %v body %s", req.Method, req.URL, req.Header, body)
	}
}
