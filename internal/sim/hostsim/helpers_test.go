package hostsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// client drives a started simulator in unit tests.
type client struct {
	t    *testing.T
	base string
	key  string
}

func startSim(t *testing.T, opts Options) (*Server, *client) {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, &client{t: t, base: s.URL(), key: s.AdminAPIKey()}
}

type result struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (r result) data() map[string]any {
	d, _ := r.body["data"].(map[string]any)
	return d
}

func (c *client) call(method, path string, hdr map[string]string, body any) result {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := result{status: resp.StatusCode, header: resp.Header, raw: raw}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (c *client) admin(method, path string, body any) result {
	c.t.Helper()
	return c.call(method, path, map[string]string{"x-api-key": c.key}, body)
}

func (c *client) mustAdmin(method, path string, body any) map[string]any {
	c.t.Helper()
	r := c.admin(method, path, body)
	if r.status != 200 {
		c.t.Fatalf("%s %s: %d %s", method, path, r.status, r.raw)
	}
	return r.data()
}

func id(m map[string]any) int64 { return int64(m["id"].(float64)) }

// world is a group with one account on a stub upstream, a funded user and a key.
type world struct {
	group, account, user int64
	key                  string
}

func (c *client) world(stubURL, platform string, extra map[string]any) world {
	c.t.Helper()
	var w world
	w.group = id(c.mustAdmin("POST", "/api/v1/admin/groups", map[string]any{"name": fmt.Sprintf("g-%s-%d", platform, len(stubURL)+int(randByte())), "platform": platform, "rate_multiplier": 1}))
	acct := map[string]any{"name": "acct", "platform": platform, "type": "apikey",
		"credentials": map[string]any{"api_key": "sk-up", "base_url": stubURL, "model_mapping": map[string]any{"m-public": "m-upstream"}},
		"concurrency": 1, "priority": 1, "group_ids": []any{w.group}}
	if extra != nil {
		acct["extra"] = extra
	}
	w.account = id(c.mustAdmin("POST", "/api/v1/admin/accounts", acct))
	email := fmt.Sprintf("u%d@example.com", w.group)
	w.user = id(c.mustAdmin("POST", "/api/v1/admin/users", map[string]any{"email": email, "password": "pw-123456"}))
	c.mustAdmin("POST", fmt.Sprintf("/api/v1/admin/users/%d/balance", w.user), map[string]any{"balance": 5, "operation": "add"})
	tok := c.login(email, "pw-123456")
	r := c.call("POST", "/api/v1/keys", map[string]string{"Authorization": "Bearer " + tok}, map[string]any{"name": "k", "group_id": w.group})
	if r.status != 200 {
		c.t.Fatalf("key: %d %s", r.status, r.raw)
	}
	w.key = r.data()["key"].(string)
	return w
}

func randByte() byte { return randHex(1)[0] }

func (c *client) login(email, pw string) string {
	c.t.Helper()
	r := c.call("POST", "/api/v1/auth/login", nil, map[string]any{"email": email, "password": pw})
	if r.status != 200 {
		c.t.Fatalf("login %s: %d %s", email, r.status, r.raw)
	}
	return r.data()["access_token"].(string)
}

func (c *client) chat(key, model string, stream bool) result {
	c.t.Helper()
	return c.call("POST", "/v1/chat/completions", map[string]string{"Authorization": "Bearer " + key},
		map[string]any{"model": model, "stream": stream, "messages": []any{map[string]any{"role": "user", "content": "hi"}}})
}

func (c *client) test(acct int64, model string) string {
	c.t.Helper()
	r := c.admin("POST", fmt.Sprintf("/api/v1/admin/accounts/%d/test", acct), map[string]any{"model_id": model})
	return string(r.raw)
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
