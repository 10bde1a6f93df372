package hostsim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fixtureRoot is where the recorded exchanges live, relative to this package: the host
// client's testdata, so that the client and the simulator are checked against one set.
const fixtureRoot = "../../host/testdata/sub2api"

// shapeAllowList: JSON paths (dot-joined, arrays as []) whose contents are
// not compared, with the reason. Everything else must match in key set and
// value types.
var shapeAllowList = map[string]string{
	".model_mapping": "keys are data (the mapping sent), not schema",
}

// exactTestErrors are account-test fixtures whose error texts must match word for word:
// the text is the only place the host says why it refused.
var exactTestErrors = map[string]bool{"accounts.test.outbound-policy": true}

// sseErrors joins the texts of an event stream's error events.
func sseErrors(b []byte) string {
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		var ev struct {
			Type  string `json:"type"`
			Error string `json:"error"`
		}
		if data, ok := strings.CutPrefix(line, "data:"); ok && json.Unmarshal([]byte(strings.TrimSpace(data)), &ev) == nil && ev.Type == "error" {
			out = append(out, ev.Error)
		}
	}
	return strings.Join(out, " | ")
}

// notCovered lists fixtures the conformance test does not replay yet.
// Empty: every recorded fixture of the three versions is replayed.
var notCovered = map[string]string{}

type fixture struct {
	Request struct {
		Method  string            `json:"method"`
		Path    string            `json:"path"`
		Headers map[string]string `json:"headers"`
		Body    json.RawMessage   `json:"body"`
	} `json:"request"`
	Response struct {
		Status   int             `json:"status"`
		Headers  map[string]any  `json:"headers"`
		Body     json.RawMessage `json:"body"`
		BodyFile string          `json:"body_file"`
	} `json:"response"`
	Notes string `json:"notes"`
}

func TestFixtureConformance(t *testing.T) {
	for _, v := range []string{Profile179, Profile129, ProfileFork} {
		t.Run(v, func(t *testing.T) {
			dir := filepath.Join(fixtureRoot, v)
			files, err := filepath.Glob(filepath.Join(dir, "*.json"))
			if err != nil || len(files) == 0 {
				t.Fatalf("no fixtures in %s (err %v): the recorded fixtures must be present", dir, err)
			}
			all := map[string]*fixture{}
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				fx := &fixture{}
				if err := json.Unmarshal(b, fx); err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				all[strings.TrimSuffix(filepath.Base(f), ".json")] = fx
			}
			names := make([]string, 0, len(all))
			for n := range all {
				names = append(names, n)
			}
			sort.Strings(names)
			var skipped []string
			for _, name := range names {
				if why, skip := notCovered[name]; skip {
					skipped = append(skipped, name+" ("+why+")")
					continue
				}
				t.Run(name, func(t *testing.T) {
					rp := newReplayer(t, v, dir, all)
					rp.check(name)
				})
			}
			t.Logf("%s: %d fixtures, not covered yet: %v", v, len(names), skipped)
		})
	}
}

// replayer replays one fixture against a fresh simulator, creating the
// objects the recorded request refers to by replaying their own creation
// fixtures first (ids are translated recorded -> simulated).
type replayer struct {
	t        *testing.T
	version  string
	dir      string
	all      map[string]*fixture
	sim      *Server
	hs       *httptest.Server
	stub     *stubUpstream
	creators map[string]map[int64]string // kind -> recorded id -> creating fixture
	ids      map[string]map[int64]int64  // kind -> recorded id -> simulated id
	tokens   map[int64]string            // simulated user id -> JWT
	pw       map[int64]string            // simulated user id -> password
	gwKey    string                      // gateway key to send instead of the recorded one
	hdr      map[string]string           // header overrides for the replayed request
	bodyEdit func(map[string]any)        // edit of the replayed request body
	seq      int
}

func newReplayer(t *testing.T, version, dir string, all map[string]*fixture) *replayer {
	rp := &replayer{t: t, version: version, dir: dir, all: all, creators: map[string]map[int64]string{},
		ids: map[string]map[int64]int64{}, tokens: map[int64]string{}, pw: map[int64]string{}, hdr: map[string]string{}}
	// compliance.ack-required.regenerate was recorded at bootstrap, before the
	// first admin had accepted.
	opts := Options{Profile: version, ComplianceLocked: strings.HasPrefix(t.Name(), "TestFixtureConformance/"+version+"/compliance.ack-required.regenerate")}
	if strings.Contains(t.Name(), "outbound-policy") {
		// Recorded on a host started with its outbound URL policy on.
		opts.OutboundPolicy = &OutboundPolicy{}
	}
	if strings.HasSuffix(t.Name(), "/users.balance.in-progress") {
		// Recorded while an identical request was in flight: keep the twin in flight.
		opts.IdempotentWrite = 2 * time.Second
	}
	if lf := all["auth.login.admin.ok"]; lf != nil {
		var b map[string]any
		_ = json.Unmarshal(lf.Request.Body, &b)
		opts.AdminEmail, opts.AdminPassword = str(b, "email"), str(b, "password")
	}
	rp.sim = New(opts)
	rp.pw[adminUserID] = opts.AdminPassword
	rp.hs = httptest.NewServer(rp.sim)
	t.Cleanup(rp.hs.Close)
	rp.stub = newStubUpstream(t)
	// Index which fixture created which recorded object.
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fx := all[n]
		if fx.Request.Method != http.MethodPost || fx.Response.Status != 200 || strings.Contains(n, "replay") {
			continue
		}
		kind := map[string]string{"/api/v1/admin/groups": "group", "/api/v1/admin/accounts": "account", "/api/v1/admin/users": "user",
			"/api/v1/keys": "key", "/api/v1/admin/subscriptions/assign": "sub"}[fx.Request.Path]
		if kind == "" {
			continue
		}
		var env struct {
			Data struct {
				ID int64 `json:"id"`
			} `json:"data"`
		}
		if json.Unmarshal(fx.Response.Body, &env) != nil || env.Data.ID == 0 {
			continue
		}
		if rp.creators[kind] == nil {
			rp.creators[kind] = map[int64]string{}
		}
		if _, dup := rp.creators[kind][env.Data.ID]; !dup {
			rp.creators[kind][env.Data.ID] = n
		}
	}
	return rp
}

// do sends a request to the simulator.
func (rp *replayer) do(method, path string, hdr map[string]string, body []byte) (*http.Response, []byte) {
	rp.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, rp.hs.URL+path, rd)
	if err != nil {
		rp.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		rp.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// admin sends an admin-key request and returns data.
func (rp *replayer) admin(method, path string, body any) map[string]any {
	rp.t.Helper()
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	resp, b := rp.do(method, path, map[string]string{"x-api-key": rp.sim.AdminAPIKey()}, raw)
	if resp.StatusCode != 200 {
		rp.t.Fatalf("setup %s %s: %d %s", method, path, resp.StatusCode, b)
	}
	var env struct {
		Data map[string]any `json:"data"`
	}
	_ = json.Unmarshal(b, &env)
	return env.Data
}

func (rp *replayer) simID(kind string, rec int64, hint string) int64 {
	rp.t.Helper()
	if rec == 999999 || ((kind == "group" || kind == "user") && rec == 1) {
		return rec
	}
	if id, ok := rp.ids[kind][rec]; ok {
		return id
	}
	var id int64
	if creator := rp.creators[kind][rec]; creator != "" {
		_, b := rp.send(creator)
		var env struct {
			Data struct {
				ID int64 `json:"id"`
			} `json:"data"`
		}
		_ = json.Unmarshal(b, &env)
		id = env.Data.ID
		if id == 0 {
			rp.t.Fatalf("creating recorded %s %d with %s failed: %s", kind, rec, creator, b)
		}
	} else {
		rp.seq++
		switch kind {
		case "group":
			if hint == "" {
				hint = "openai"
			}
			id = int64(rp.admin("POST", "/api/v1/admin/groups", map[string]any{"name": fmt.Sprintf("auto-%d-%d", rec, rp.seq), "platform": hint, "rate_multiplier": 1})["id"].(float64))
		case "user":
			id = rp.newUser(fmt.Sprintf("auto-%d-%d@example.com", rec, rp.seq), 10)
		default:
			rp.t.Fatalf("recorded %s %d has no creating fixture", kind, rec)
		}
	}
	if rp.ids[kind] == nil {
		rp.ids[kind] = map[int64]int64{}
	}
	rp.ids[kind][rec] = id
	return id
}

func (rp *replayer) newUser(email string, balance float64) int64 {
	u := rp.admin("POST", "/api/v1/admin/users", map[string]any{"email": email, "password": "fixture-pass-0001", "username": "auto", "concurrency": 5})
	id := int64(u["id"].(float64))
	rp.pw[id] = "fixture-pass-0001"
	if balance > 0 {
		rp.admin("POST", fmt.Sprintf("/api/v1/admin/users/%d/balance", id), map[string]any{"balance": balance, "operation": "add"})
	}
	return id
}

// token logs a simulated user in.
func (rp *replayer) token(uid int64) string {
	rp.t.Helper()
	if tok := rp.tokens[uid]; tok != "" {
		return tok
	}
	var email string
	for _, u := range rp.sim.State().Users {
		if u.ID == uid {
			email = u.Email
		}
	}
	if uid == adminUserID {
		email = rp.sim.opts.AdminEmail
	}
	pw := rp.pw[uid]
	if pw == "" {
		pw = "fixture-pass-0001"
	}
	b, _ := json.Marshal(map[string]any{"email": email, "password": pw})
	resp, body := rp.do("POST", "/api/v1/auth/login", nil, b)
	if resp.StatusCode != 200 {
		rp.t.Fatalf("login %s: %d %s", email, resp.StatusCode, body)
	}
	var env struct {
		Data struct {
			AccessToken string `json:"access_token"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &env)
	rp.tokens[uid] = env.Data.AccessToken
	return env.Data.AccessToken
}

// jwtUser reads the recorded user id out of a fixture JWT.
func jwtUser(tok string) (int64, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || !strings.HasPrefix(tok, "eyJ") {
		return 0, false
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return 0, false
	}
	var c struct {
		UserID int64 `json:"user_id"`
	}
	if json.Unmarshal(b, &c) != nil {
		return 0, false
	}
	return c.UserID, true
}

var pathKinds = map[string]string{"groups": "group", "accounts": "account", "users": "user", "keys": "key", "subscriptions": "sub"}

// translate turns a recorded request into one for this simulator.
func (rp *replayer) translate(fx *fixture) (string, string, map[string]string, []byte) {
	u, _ := url.Parse(fx.Request.Path)
	segs := strings.Split(u.Path, "/")
	for i := 1; i < len(segs); i++ {
		if kind := pathKinds[segs[i-1]]; kind != "" {
			if n, err := strconv.ParseInt(segs[i], 10, 64); err == nil {
				segs[i] = strconv.FormatInt(rp.simID(kind, n, ""), 10)
			}
		}
	}
	q := u.Query()
	for param, kind := range map[string]string{"user_id": "user", "group_id": "group"} {
		if v := q.Get(param); v != "" {
			n, _ := strconv.ParseInt(v, 10, 64)
			q.Set(param, strconv.FormatInt(rp.simID(kind, n, ""), 10))
		}
	}
	path := strings.Join(segs, "/")
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	hdr := map[string]string{}
	for k, v := range fx.Request.Headers {
		hdr[k] = v
	}
	if auth := hdr["Authorization"]; strings.HasPrefix(auth, "Bearer ") {
		tok := strings.TrimPrefix(auth, "Bearer ")
		if uid, isJWT := jwtUser(tok); isJWT {
			hdr["Authorization"] = "Bearer " + rp.token(rp.simID("user", uid, ""))
		} else if !strings.HasPrefix(tok, "admin-") && rp.gwKey != "" {
			hdr["Authorization"] = "Bearer " + rp.gwKey
		}
	}
	if k := hdr["x-api-key"]; k != "" && !strings.HasPrefix(k, "admin-") && rp.gwKey != "" {
		hdr["x-api-key"] = rp.gwKey
	}
	for k, v := range rp.hdr {
		hdr[k] = v
	}
	var body []byte
	if len(fx.Request.Body) > 0 && string(fx.Request.Body) != "null" {
		var m map[string]any
		if err := json.Unmarshal(fx.Request.Body, &m); err == nil {
			rp.translateBody(m)
			if rp.bodyEdit != nil {
				rp.bodyEdit(m)
			}
			body, _ = json.Marshal(m)
		} else {
			body = fx.Request.Body
		}
	}
	return fx.Request.Method, path, hdr, body
}

func (rp *replayer) translateBody(m map[string]any) {
	hint := str(m, "platform")
	if hint == "protocol_gateway" {
		hint = str(m, "gateway_protocol")
	}
	if hint != "" && !rp.sim.prof.groupPlatforms[hint] {
		hint = "openai"
	}
	if gids, ok := m["group_ids"].([]any); ok {
		for i, g := range gids {
			if f, ok := g.(float64); ok {
				gids[i] = rp.simID("group", int64(f), hint)
			}
		}
	}
	for field, kind := range map[string]string{"group_id": "group", "user_id": "user"} {
		if f, ok := m[field].(float64); ok && f > 0 {
			m[field] = rp.simID(kind, int64(f), "")
		}
	}
	if c, ok := m["credentials"].(map[string]any); ok {
		if b := str(c, "base_url"); b != "" {
			b = strings.Replace(b, "http://127.0.0.1:18090", rp.stub.URL, 1)
			c["base_url"] = strings.Replace(b, "http://127.0.0.1:18095", rp.stub.URL, 1)
		}
	}
}

// send replays a fixture's request (translated) and records created ids.
func (rp *replayer) send(name string) (*http.Response, []byte) {
	rp.t.Helper()
	fx := rp.all[name]
	if fx == nil {
		rp.t.Fatalf("fixture %s missing", name)
	}
	m, p, h, b := rp.translate(fx)
	rp.sim.WaitProbes() // recordings read accounts after the host's own probe
	resp, body := rp.do(m, p, h, b)
	if fx.Request.Method == http.MethodPost && resp.StatusCode == 200 {
		var rec, got struct {
			Data struct {
				ID int64 `json:"id"`
			} `json:"data"`
		}
		_ = json.Unmarshal(fx.Response.Body, &rec)
		_ = json.Unmarshal(body, &got)
		kind := map[string]string{"/api/v1/admin/groups": "group", "/api/v1/admin/accounts": "account", "/api/v1/admin/users": "user",
			"/api/v1/keys": "key", "/api/v1/admin/subscriptions/assign": "sub"}[fx.Request.Path]
		if kind != "" && rec.Data.ID != 0 && got.Data.ID != 0 {
			if rp.ids[kind] == nil {
				rp.ids[kind] = map[int64]int64{}
			}
			rp.ids[kind][rec.Data.ID] = got.Data.ID
			if kind == "user" {
				var rb map[string]any
				_ = json.Unmarshal(fx.Request.Body, &rb)
				rp.pw[got.Data.ID] = str(rb, "password")
			}
		}
	}
	return resp, body
}

// check replays one fixture and compares the answer with the recording.
func (rp *replayer) check(name string) {
	rp.t.Helper()
	fx := rp.all[name]
	prep(rp, name)
	resp, body := rp.send(name)
	if resp.StatusCode != fx.Response.Status {
		rp.t.Fatalf("status %d, recorded %d; body %s", resp.StatusCode, fx.Response.Status, trunc(body))
	}
	recCT, _ := fx.Response.Headers["Content-Type"].(string)
	if recCT != "" {
		want, _, _ := mime.ParseMediaType(recCT)
		got, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if want != got {
			rp.t.Errorf("content type %q, recorded %q", resp.Header.Get("Content-Type"), recCT)
		}
	}
	if fx.Response.Headers["X-Idempotency-Replayed"] == "true" && resp.Header.Get("X-Idempotency-Replayed") != "true" {
		rp.t.Errorf("missing X-Idempotency-Replayed: true")
	}
	if fx.Response.BodyFile != "" {
		rec, err := os.ReadFile(filepath.Join(rp.dir, fx.Response.BodyFile))
		if err != nil {
			rp.t.Fatalf("body file: %v", err)
		}
		want, got := sseShape(rec), sseShape(body)
		if strings.Join(want, "\n") != strings.Join(got, "\n") {
			rp.t.Errorf("event stream shape differs\nrecorded:\n  %s\nsimulated:\n  %s\nbody: %s", strings.Join(want, "\n  "), strings.Join(got, "\n  "), trunc(body))
		}
		if exactTestErrors[name] {
			if w, g := sseErrors(rec), sseErrors(body); w != g {
				rp.t.Errorf("error events %q, recorded %q", g, w)
			}
		}
		return
	}
	var recBody any
	if err := json.Unmarshal(fx.Response.Body, &recBody); err != nil {
		rp.t.Fatalf("recorded body: %v", err)
	}
	if s, isText := recBody.(string); isText {
		if s != string(body) {
			rp.t.Errorf("body %q, recorded %q", trunc(body), s)
		}
		return
	}
	var gotBody any
	if err := json.Unmarshal(body, &gotBody); err != nil {
		rp.t.Fatalf("simulated body is not JSON: %s", trunc(body))
	}
	var diffs []string
	compareShape("$", recBody, gotBody, &diffs)
	if len(diffs) > 0 {
		rp.t.Errorf("JSON shape differs:\n  %s\nbody: %s", strings.Join(diffs, "\n  "), trunc(body))
	}
	// Typed errors and middleware errors must carry the recorded code/reason.
	if rm, ok := recBody.(map[string]any); ok {
		gm, _ := gotBody.(map[string]any)
		for _, k := range []string{"reason", "code"} {
			if rs, isStr := rm[k].(string); isStr && gm[k] != rs {
				rp.t.Errorf("%s %v, recorded %q", k, gm[k], rs)
			}
		}
		if re, ok := rm["error"].(map[string]any); ok {
			ge, _ := gm["error"].(map[string]any)
			if re["type"] != ge["type"] || re["message"] != ge["message"] {
				rp.t.Errorf("gateway error %v, recorded %v", ge, re)
			}
		}
	}
}

func trunc(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "..."
	}
	return string(b)
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "bool"
	case float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// compareShape compares key sets and value types recursively.
func compareShape(path string, rec, got any, diffs *[]string) {
	for suffix := range shapeAllowList {
		if strings.HasSuffix(path, suffix) {
			return
		}
	}
	rt, gt := typeName(rec), typeName(got)
	if rt != gt {
		*diffs = append(*diffs, fmt.Sprintf("%s: %s, recorded %s", path, gt, rt))
		return
	}
	switch r := rec.(type) {
	case map[string]any:
		g := got.(map[string]any)
		for k := range r {
			if _, has := g[k]; !has {
				*diffs = append(*diffs, path+"."+k+": missing")
			}
		}
		for k := range g {
			if _, has := r[k]; !has {
				*diffs = append(*diffs, path+"."+k+": not recorded")
			}
		}
		keys := make([]string, 0, len(r))
		for k := range r {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if gv, has := g[k]; has {
				compareShape(path+"."+k, r[k], gv, diffs)
			}
		}
	case []any:
		g := got.([]any)
		if (len(r) == 0) != (len(g) == 0) {
			*diffs = append(*diffs, fmt.Sprintf("%s: %d items, recorded %d", path, len(g), len(r)))
			return
		}
		if len(r) > 0 {
			compareShape(path+"[]", r[0], g[0], diffs)
		}
	}
}

// sseShape reduces an event stream to the shape of each data line, with
// consecutive repeats collapsed (chunking differs, structure must not).
func sseShape(b []byte) []string {
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "data:") {
			continue
		}
		data := strings.TrimSpace(strings.TrimPrefix(line, "data:"))
		var v any
		sig := data
		if json.Unmarshal([]byte(data), &v) == nil {
			sig = shapeSig(v)
		}
		if len(out) == 0 || out[len(out)-1] != sig {
			out = append(out, sig)
		}
	}
	return out
}

func shapeSig(v any) string {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			s := k + ":" + shapeSig(x[k])
			if k == "type" || k == "kind" || k == "object" {
				s = fmt.Sprintf("%s=%v", k, x[k])
			}
			parts = append(parts, s)
		}
		return "{" + strings.Join(parts, ",") + "}"
	case []any:
		if len(x) == 0 {
			return "[]"
		}
		return "[" + shapeSig(x[0]) + "]"
	}
	return typeName(v)
}
