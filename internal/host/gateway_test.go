package host

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cn-relay-manager/cn-relay-manager/internal/evidence"
)

// gatewayClient points the admin URL at a dead address so that only PublicURL can answer.
func (rp *replay) gatewayClient() *Client {
	return New(Config{AdminURL: "http://127.0.0.1:1", PublicURL: rp.URL + "/", AdminAPIKey: testAdminKey})
}

func TestGatewayModels(t *testing.T) {
	ctx := context.Background()
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			rp := newReplay(t, v, "gateway.models.ok")
			c := rp.gatewayClient()
			ids, err := c.GatewayModels(ctx, testGatewayKey)
			if err != nil {
				t.Fatal(err)
			}
			sort.Strings(ids)
			if strings.Join(ids, ",") != "gpt-4o,gpt-4o-mini" {
				t.Errorf("ids %v", ids)
			}
			got := rp.last()
			if got.Header.Get("Authorization") != "Bearer "+testGatewayKey || got.Header.Get("x-api-key") != "" {
				t.Errorf("gateway auth headers %v", got.Header)
			}

			rp.add(loadFixture(t, v, "gateway.models.no-account"))
			ids, err = c.GatewayModels(ctx, testGatewayKey)
			if err != nil {
				t.Fatal(err)
			}
			if v == "fork-0.1.321" && len(ids) != 0 || v != "fork-0.1.321" && len(ids) < 9 {
				t.Errorf("no-account models %v", ids)
			}
		})
	}
}

// expectedGatewayCode derives the code a gateway error body should decode to.
func expectedGatewayCode(t *testing.T, body []byte) string {
	var b struct {
		Code  any `json:"code"`
		Error *struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &b) != nil {
		return ""
	}
	if b.Error != nil {
		if b.Error.Type != "" {
			return b.Error.Type
		}
		return b.Error.Status
	}
	s, _ := b.Code.(string)
	return s
}

// TestGatewayErrorBodies replays every recorded non-200 gateway answer of every version.
func TestGatewayErrorBodies(t *testing.T) {
	ctx := context.Background()
	total := 0
	for _, v := range versions {
		files, err := filepath.Glob(filepath.Join(fixtureDir(t, v), "gateway.*.json"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no gateway fixtures (%v)", v, err)
		}
		for _, f := range files {
			name := strings.TrimSuffix(filepath.Base(f), ".json")
			fx := loadFixture(t, v, name)
			if fx.Response.Status == 200 {
				continue
			}
			total++
			t.Run(v+"/"+name, func(t *testing.T) {
				rp := newReplay(t, v, name)
				c := rp.gatewayClient()
				var err error
				switch {
				case fx.Request.Path == "/v1/models":
					_, err = c.GatewayModels(ctx, testGatewayKey)
				case strings.HasPrefix(fx.Request.Path, "/v1/models/"):
					// GET /v1/models/{id}: not part of the client API; decode the body directly.
					resp := &response{status: fx.Response.Status, header: map[string][]string{}, body: fx.responseBody(t)}
					err = decodeError(resp, "GET", fx.Request.Path, nil)
				default:
					var in struct {
						Model  string `json:"model"`
						Stream bool   `json:"stream"`
					}
					requestBody(t, fx, &in)
					_, err = c.GatewayChat(ctx, testGatewayKey, ChatRequest{Model: in.Model, Stream: in.Stream})
				}
				he := mustHostError(t, err, fx.Response.Status, expectedGatewayCode(t, fx.responseBody(t)))
				if he.Message == "" {
					t.Error("empty message")
				}
				if strings.Contains(err.Error(), testGatewayKey[:16]) {
					t.Error("end-user key in error")
				}
			})
		}
	}
	if total < 50 {
		t.Errorf("only %d gateway error fixtures replayed", total)
	}
}

func TestGatewayChatOK(t *testing.T) {
	cases := []struct {
		version, fixture string
		stream           bool
		contentType      string
		content          string
	}{
		// 129 and the fork label non-stream answers text/event-stream with a JSON body.
		{"0.1.129", "gateway.chat.ok", false, "text/event-stream", "Hello from fake upstream responses API (model=fake-upstream-model)"},
		{"0.1.179", "gateway.chat.ok", false, "application/json", "Hello from fake upstream (model=fake-upstream-model)"},
		{"fork-0.1.321", "gateway.chat.ok", false, "text/event-stream", "Hello from fake upstream responses API (model=fake-upstream-model)"},
		{"0.1.129", "gateway.chat.stream.ok", true, "text/event-stream", "Hello from fake upstream responses API (model=fake-upstream-model)"},
		{"0.1.179", "gateway.chat.stream.ok", true, "text/event-stream", "Hello from fake upstream (model=fake-upstream-model)"},
		{"fork-0.1.321", "gateway.chat.stream.ok", true, "text/event-stream", "Hello from fake upstream responses API (model=fake-upstream-model)"},
		{"0.1.179", "gateway.chat.deepseek.stream.ok", true, "text/event-stream", "Hello from chat-only stub"},
		{"0.1.179", "gateway.chat.kimi.ok", false, "application/json", "Hello from chat-only stub (model=kimi-k2.6)"},
		{"fork-0.1.321", "gateway.chat.protocol-gateway.ok", false, "", "Hello from chat-only stub (model=deepseek-v4-flash)"},
		{"0.1.129", "gateway.chat.force-chat-completions.stream.ok", true, "text/event-stream", "Hello from fake upstream (model=fake-upstream-model)"},
	}
	for _, tc := range cases {
		t.Run(tc.version+"/"+tc.fixture, func(t *testing.T) {
			var rec evidence.Recorder
			ctx := evidence.WithRecorder(context.Background(), &rec)
			rp := newReplay(t, tc.version, tc.fixture)
			fx := loadFixture(t, tc.version, tc.fixture)
			var in struct {
				Model string `json:"model"`
			}
			requestBody(t, fx, &in)
			res, err := rp.gatewayClient().GatewayChat(ctx, testGatewayKey, ChatRequest{Model: in.Model, Prompt: "hi", Stream: tc.stream})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != 200 || res.ID == "" || res.Model == "" || !strings.HasPrefix(res.ContentType, tc.contentType) {
				t.Errorf("result %+v", res)
			}
			if !strings.Contains(res.Content, tc.content) {
				t.Errorf("content %q want %q", res.Content, tc.content)
			}
			var sent map[string]any
			_ = json.Unmarshal(rp.last().Body, &sent)
			if sent["model"] != in.Model || (sent["stream"] == true) != tc.stream {
				t.Errorf("sent %s", rp.last().Body)
			}
			ex := rec.Exchanges()
			if len(ex) != 1 || ex[0].Target != "gateway" || ex[0].Path != "/v1/chat/completions" || ex[0].Status != 200 || ex[0].Preview == "" {
				t.Errorf("evidence %+v", ex)
			}
		})
	}
}

func TestGatewayChatErrorInside200(t *testing.T) {
	fx := &fixtureFile{name: "inband", dir: t.TempDir()}
	fx.Request.Method, fx.Request.Path = "POST", "/v1/chat/completions"
	fx.Response.Status = 200
	fx.Response.Body = json.RawMessage(`"data: {\"error\":{\"message\":\"boom\",\"type\":\"upstream_error\"}}\n\n"`)
	rp := newReplay(t, "0.1.179")
	rp.add(fx)
	_, err := rp.gatewayClient().GatewayChat(context.Background(), testGatewayKey, ChatRequest{Model: "m", Stream: true})
	mustHostError(t, err, 200, "upstream_error")
}
