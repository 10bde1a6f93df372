package host

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestProfilesTable(t *testing.T) {
	ps := Profiles()
	if len(ps) != 4 {
		t.Fatalf("%d profiles", len(ps))
	}
	p02, _ := ProfileByName(Profile02)
	if !p02.GroupModelAllowlist || p02.KeyCreateMaxActive != 200 || p02.KeyCreateMaxPerHour != 60 ||
		p02.NativePlatforms["minimax"] != "minimax" || p02.Exercised || !p02.ComplianceGate {
		t.Errorf("0.2.15 profile: %+v", p02)
	}
	for _, p := range ps {
		if p.Source == "" {
			t.Errorf("%s: no source", p.Name)
		}
		if p.Name != Profile02 && (p.GroupModelAllowlist || p.KeyCreateMaxActive != 0) {
			t.Errorf("%s: 0.2.x-only behaviour set", p.Name)
		}
	}
	p129, _ := ProfileByName("0.1.129")
	p179, _ := ProfileByName("0.1.179")
	pf, _ := ProfileByName("fork-0.1.321")
	if p129.AccountTestTrustedChatOnly || !p179.AccountTestTrustedChatOnly || !pf.AccountTestTrustedChatOnly {
		t.Error("AccountTestTrustedChatOnly")
	}
	if p129.UnknownModelStatus != 503 || p179.UnknownModelStatus != 404 || pf.UnknownModelStatus != 503 {
		t.Error("UnknownModelStatus")
	}
	if p129.ComplianceGate || !p179.ComplianceGate || pf.ComplianceGate {
		t.Error("ComplianceGate")
	}
	if p129.ClearErrorNeedsSchedulable || !p179.ClearErrorNeedsSchedulable || pf.ClearErrorNeedsSchedulable {
		t.Error("ClearErrorNeedsSchedulable")
	}
	if p129.ModelMappingStyle != MappingModelMapping || p179.ModelMappingStyle != MappingModelMapping || pf.ModelMappingStyle != MappingScopeV2 {
		t.Error("ModelMappingStyle")
	}
	if len(p129.NativePlatforms) != 0 || p179.NativePlatforms["glm"] != "zhipu" || p179.NativePlatforms["kimi"] != "kimi" ||
		pf.NativePlatforms["deepseek"] != "deepseek" || pf.NativePlatforms["kimi"] != "" {
		t.Error("NativePlatforms")
	}
	// Profiles are copies: changing one does not change the table.
	ps[1].NativePlatforms["glm"] = "openai"
	ps[1].WarmupGatewayCodes[0] = "x"
	if again, _ := ProfileByName("0.1.179"); again.NativePlatforms["glm"] != "zhipu" || again.WarmupGatewayCodes[0] == "x" {
		t.Error("Profiles() leaked the table")
	}
	if _, ok := ProfileByName("9.9.9"); ok {
		t.Error("unknown profile found")
	}
}

// TestProfilesMatchFixtures checks profile facts against the recorded exchanges.
func TestProfilesMatchFixtures(t *testing.T) {
	for _, v := range versions {
		p, _ := ProfileByName(v)
		unknown := loadFixture(t, v, "gateway.chat.unknown-model")
		if unknown.Response.Status != p.UnknownModelStatus {
			t.Errorf("%s: unknown model %d, profile %d", v, unknown.Response.Status, p.UnknownModelStatus)
		}
		for _, name := range []string{"gateway.chat.no-account", "gateway.chat.after-account-error", "gateway.chat.unknown-model"} {
			fx := loadFixture(t, v, name)
			err := decodeError(&response{status: fx.Response.Status, header: map[string][]string{}, body: fx.responseBody(t)}, "POST", "/v1/chat/completions", nil)
			if !p.IsWarmup(err) {
				t.Errorf("%s %s: %s not a warm-up code", v, name, err.Code)
			}
		}
		fx := loadFixture(t, v, "gateway.chat.upstream-401")
		if v != "fork-0.1.321" {
			err := decodeError(&response{status: fx.Response.Status, header: map[string][]string{}, body: fx.responseBody(t)}, "POST", "/v1/chat/completions", nil)
			if p.IsWarmup(err) {
				t.Errorf("%s: upstream 401 counted as warm-up", v)
			}
		}
		kg := loadFixture(t, v, "gateway.chat.key-group-deleted")
		if got := expectedGatewayCode(t, kg.responseBody(t)); got != p.KeyGroupDeletedCode {
			t.Errorf("%s: key-group-deleted %q, profile %q", v, got, p.KeyGroupDeletedCode)
		}
		tnf := loadFixture(t, v, "accounts.test.not-found")
		if tnf.Response.Status != p.AccountTestNotFoundStatus {
			t.Errorf("%s: test not-found %d", v, tnf.Response.Status)
		}
	}
	if (Profile{}).IsWarmup(nil) {
		t.Error("IsWarmup(nil)")
	}
}

func TestDetectProfile(t *testing.T) {
	cases := []struct {
		version  string
		feats    Features
		want     string
		warnPart string
	}{
		{"0.1.129", Features{}, "0.1.129", ""},
		{"0.1.179", Features{ComplianceRoute: true}, "0.1.179", ""},
		{"v0.1.179", Features{ComplianceRoute: true}, "0.1.179", ""},
		{"0.1.321", Features{ForkMarkers: true}, "fork-0.1.321", ""},
		{"0.1.321", Features{}, "fork-0.1.321", ""},
		{"0.1.330", Features{ForkMarkers: true}, "fork-0.1.321", "fork markers"},
		{"0.1.185", Features{ComplianceRoute: true}, "0.1.179", "compliance gate"},
		{"0.1.150", Features{}, "0.1.129", "not exercised"},
		{"0.1.150", Features{ComplianceRoute: true}, "0.1.179", "not exercised"},
		{"0.1.100", Features{}, "0.1.129", "older than 0.1.129"},
		{"0.1.250", Features{}, "fork-0.1.321", "fork"},
		{"", Features{}, "0.1.129", "not recognised"},
		{"dev", Features{ComplianceRoute: true}, "0.1.179", "compliance gate"},
		{"0.1.179", Features{}, "0.1.179", "no compliance route"},
		{"0.2.3", Features{ComplianceRoute: true}, "0.2.15", "older 0.2.x"},
		{"0.2.15", Features{ComplianceRoute: true}, "0.2.15", "release notes"},
		{"v0.2.14-custom.1+g10", Features{ComplianceRoute: true}, "0.2.15", "older 0.2.x"},
		{"0.2.16", Features{ComplianceRoute: true}, "0.2.15", "newer than every known release"},
		{"0.3.0", Features{}, "0.2.15", "newer than every known release"},
		{"1.0.0", Features{ComplianceRoute: true}, "0.2.15", "newer than every known release"},
		{"0.1.321.4", Features{ForkMarkers: true}, "fork-0.1.321", "fork markers"},
		{"0.0.9", Features{}, "0.1.129", "older than every known profile"},
	}
	for _, tc := range cases {
		p, w := DetectProfile(tc.version, tc.feats)
		if p.Name != tc.want {
			t.Errorf("%q %+v: profile %s, want %s", tc.version, tc.feats, p.Name, tc.want)
		}
		if (tc.warnPart == "") != (w == "") || !strings.Contains(w, tc.warnPart) {
			t.Errorf("%q %+v: warning %q, want containing %q", tc.version, tc.feats, w, tc.warnPart)
		}
	}
}

func TestParseVersion(t *testing.T) {
	cases := map[string]Version{
		"0.2.15":              {0, 2, 15, ""},
		"v0.1.179":            {0, 1, 179, ""},
		"0.2.14-custom.1+g10": {0, 2, 14, "-custom.1+g10"},
		"0.1.321.4":           {0, 1, 321, ".4"},
		" 1.10.0-klno.3 ":     {1, 10, 0, "-klno.3"},
		"10.20.30":            {10, 20, 30, ""},
	}
	for in, want := range cases {
		got, ok := ParseVersion(in)
		if !ok || got != want {
			t.Errorf("ParseVersion(%q) = %+v %v, want %+v", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "dev", "0.2", "0..1", "a.b.c", "0.2.x", "1234567.0.0"} {
		if v, ok := ParseVersion(bad); ok {
			t.Errorf("ParseVersion(%q) accepted: %+v", bad, v)
		}
	}
	a, _ := ParseVersion("0.1.179")
	b, _ := ParseVersion("0.2.3")
	if !a.Less(b) || b.Less(a) {
		t.Errorf("0.1.179 < 0.2.3 not ordered")
	}
}

func TestDetect(t *testing.T) {
	cases := []struct {
		version    string
		compliance string
		want       string
	}{
		{"0.1.129", "compliance.status.not-found", "0.1.129"},
		{"0.1.179", "compliance.status.ok", "0.1.179"},
		{"fork-0.1.321", "compliance.status.not-found", "fork-0.1.321"},
	}
	for _, tc := range cases {
		t.Run(tc.version, func(t *testing.T) {
			rp := newReplay(t, tc.version, "settings.public.ok", "system.version.ok", tc.compliance)
			ver, p, warn, err := rp.adminClient().Detect(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if p.Name != tc.want || warn != "" || ver != strings.TrimPrefix(tc.version, "fork-") {
				t.Errorf("detect: %q %s %q", ver, p.Name, warn)
			}
			for _, s := range rp.all() {
				if s.Method != "GET" {
					t.Errorf("Detect wrote: %s %s", s.Method, s.Path)
				}
			}
			if len(rp.all()) != 3 {
				t.Errorf("%d requests", len(rp.all()))
			}
		})
	}
	// 0.1.179 with the acting admin not yet accepted: every admin route is 423, detection
	// still succeeds and says so.
	rp := newReplay(t, "0.1.179", "settings.public.ok", "compliance.status.ok")
	lock := loadFixture(t, "0.1.179", "compliance.ack-required")
	lock.Request.Path = "/api/v1/admin/system/version"
	rp.add(lock)
	ver, p, warn, err := rp.adminClient().Detect(context.Background())
	if err != nil || ver != "0.1.179" || p.Name != "0.1.179" || !strings.Contains(warn, "compliance acknowledgement required (version v2026.06.10)") {
		t.Fatalf("locked detect: %q %s %q %v", ver, p.Name, warn, err)
	}
	// Bad admin key: an error, not a guess.
	rp = newReplay(t, "0.1.129", "settings.public.ok", "admin.invalid-admin-key")
	if _, _, _, err := rp.adminClient().Detect(context.Background()); !IsCode(err, CodeInvalidAdminKey) {
		t.Fatalf("bad key detect: %v", err)
	}
}

func TestPublicSettings(t *testing.T) {
	for _, v := range versions {
		rp := newReplay(t, v, "settings.public.ok")
		ps, err := rp.adminClient().PublicSettings(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if ps.Version != strings.TrimPrefix(v, "fork-") || ps.TurnstileEnabled || ps.TOTPEnabled || ps.BackendModeEnabled || ps.CaptchaEnabled {
			t.Errorf("%s: %+v", v, ps)
		}
		if ps.ForkMarkers != (v == "fork-0.1.321") {
			t.Errorf("%s: fork markers %v", v, ps.ForkMarkers)
		}
		if rp.last().Header.Get("x-api-key") != "" {
			t.Errorf("%s: public settings sent the admin key", v)
		}
	}
}

func specJSON(t *testing.T, s AccountSpec) map[string]any {
	b, err := json.Marshal(s.CreateRequest("n", "", []int64{1}, 5, 1).wire())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

func TestAccountSpecPerProfileAndProvider(t *testing.T) {
	mapping := map[string]string{"m-b": "up-b", "m-a": "up-a"}
	type want struct {
		platform, group, path, mode, gatewayProto, baseURL string
		forceCC, scopeV2, plainMapping                     bool
	}
	cases := []struct {
		profile, provider, base string
		want                    want
	}{
		{"0.1.129", "deepseek", "https://api.deepseek.com", want{platform: "openai", group: "openai", path: "/v1/chat/completions", forceCC: true, plainMapping: true}},
		{"0.1.129", "glm", "https://open.bigmodel.cn/api/paas/v4/", want{platform: "openai", group: "openai", path: "/api/paas/v4/chat/completions", forceCC: true, plainMapping: true, baseURL: "https://open.bigmodel.cn/api/paas/v4"}},
		{"0.1.129", "kimi", "https://api.moonshot.cn/v1", want{platform: "openai", group: "openai", path: "/v1/chat/completions", forceCC: true, plainMapping: true}},
		{"0.1.179", "deepseek", "https://api.deepseek.com", want{platform: "deepseek", group: "deepseek", path: "/v1/chat/completions", mode: "payg", plainMapping: true}},
		{"0.1.179", "kimi", "https://api.moonshot.cn/v1", want{platform: "kimi", group: "kimi", path: "/v1/chat/completions", mode: "payg", plainMapping: true}},
		{"0.1.179", "glm", "https://open.bigmodel.cn/api/paas/v4", want{platform: "zhipu", group: "zhipu", path: "/api/paas/v4/chat/completions", mode: "payg", plainMapping: true}},
		{"0.1.179", "glm", "https://open.bigmodel.cn/api/coding/paas/v4", want{platform: "zhipu", group: "zhipu", path: "/api/coding/paas/v4/chat/completions", mode: "coding", plainMapping: true}},
		{"0.1.179", "minimax", "https://api.minimaxi.com/v1", want{platform: "openai", group: "openai", path: "/v1/chat/completions", forceCC: true, plainMapping: true}},
		{"0.1.179", "ark", "https://ark.cn-beijing.volces.com/api/v3", want{platform: "openai", group: "openai", path: "/api/v3/chat/completions", forceCC: true, plainMapping: true}},
		{"fork-0.1.321", "deepseek", "https://api.deepseek.com", want{platform: "deepseek", group: "deepseek", path: "/chat/completions", plainMapping: true}},
		{"fork-0.1.321", "kimi", "https://api.moonshot.cn/v1", want{platform: "protocol_gateway", group: "openai", path: "/v1/chat/completions", gatewayProto: "openai", scopeV2: true}},
		{"fork-0.1.321", "glm", "https://open.bigmodel.cn/api/paas/v4", want{platform: "protocol_gateway", group: "openai", path: "/api/paas/v4/chat/completions", gatewayProto: "openai", scopeV2: true, baseURL: "https://open.bigmodel.cn/api/paas/v4/chat/completions"}},
		{"fork-0.1.321", "qwen", "https://dashscope.aliyuncs.com/compatible-mode/v1", want{platform: "protocol_gateway", group: "openai", path: "/compatible-mode/v1/chat/completions", gatewayProto: "openai", scopeV2: true}},
		{"fork-0.1.321", "siliconflow", "https://api.siliconflow.cn", want{platform: "protocol_gateway", group: "openai", path: "/v1/chat/completions", gatewayProto: "openai", scopeV2: true}},
	}
	for _, tc := range cases {
		t.Run(tc.profile+"/"+tc.provider, func(t *testing.T) {
			p, ok := ProfileByName(tc.profile)
			if !ok {
				t.Fatal("no profile")
			}
			s := p.AccountSpec(tc.provider, tc.base, testUpstreamKey, mapping)
			w := tc.want
			if s.Platform != w.platform || s.GroupPlatform != w.group || s.Type != "apikey" || s.UpstreamPath != w.path || s.GatewayProtocol != w.gatewayProto {
				t.Errorf("spec %+v", s)
			}
			if s.Credentials["api_key"] != testUpstreamKey {
				t.Error("api_key missing")
			}
			base := w.baseURL
			if base == "" {
				base = strings.TrimRight(tc.base, "/")
			}
			if s.Credentials["base_url"] != base {
				t.Errorf("base_url %v, want %s", s.Credentials["base_url"], base)
			}
			mode, _ := s.Credentials["account_mode"].(string)
			if mode != w.mode {
				t.Errorf("account_mode %q", mode)
			}
			if got := s.Extra["openai_responses_mode"] == "force_chat_completions"; got != w.forceCC {
				t.Errorf("force_chat_completions %v", s.Extra)
			}
			_, plain := s.Credentials["model_mapping"]
			_, scope := s.Extra["model_scope_v2"]
			if plain != w.plainMapping || scope != w.scopeV2 {
				t.Errorf("mapping style plain=%v scope=%v", plain, scope)
			}
			if scope {
				b, _ := json.Marshal(s.Extra["model_scope_v2"])
				if string(b) != `{"entries":[{"display_model_id":"m-a","target_model_id":"up-a"},{"display_model_id":"m-b","target_model_id":"up-b"}],"policy_mode":"mapping"}` {
					t.Errorf("model_scope_v2 %s", b)
				}
				if s.Extra["gateway_openai_request_format"] != "/v1/chat/completions" {
					t.Errorf("request format %v", s.Extra)
				}
			}
			if w.platform == "deepseek" && tc.profile == "fork-0.1.321" && s.Extra != nil {
				t.Error("fork deepseek must send no extra (it would drop model_mapping)")
			}
			m := specJSON(t, s)
			if (w.gatewayProto != "") != (m["gateway_protocol"] == "openai") {
				t.Errorf("wire gateway_protocol %v", m["gateway_protocol"])
			}
		})
	}
	// The spec does not alias the caller's mapping.
	p, _ := ProfileByName("0.1.179")
	s := p.AccountSpec("deepseek", "https://api.deepseek.com", "k", mapping)
	s.Credentials["model_mapping"].(map[string]any)["m-a"] = "changed"
	if mapping["m-a"] != "up-a" {
		t.Error("mapping aliased")
	}
	// No mapping: nothing mapping-shaped is sent.
	s = p.AccountSpec("minimax", "https://api.minimaxi.com/v1", "k", nil)
	if _, ok := s.Credentials["model_mapping"]; ok {
		t.Error("empty mapping sent")
	}
}

// TestAccountSpecMatchesRecordedCreates checks the spec against accounts the real hosts accepted.
func TestAccountSpecMatchesRecordedCreates(t *testing.T) {
	cases := []struct{ version, fixture, provider string }{
		{"0.1.129", "accounts.create.force-chat-completions.ok", "openai_compatible"},
		{"0.1.179", "accounts.create.deepseek.ok", "deepseek"},
		{"0.1.179", "accounts.create.kimi.ok", "kimi"},
		{"0.1.179", "accounts.create.zhipu.ok", "glm"},
		{"fork-0.1.321", "accounts.create.protocol-gateway.ok", "kimi"},
		{"fork-0.1.321", "accounts.create.deepseek.ok", "deepseek"},
	}
	for _, tc := range cases {
		t.Run(tc.version+"/"+tc.fixture, func(t *testing.T) {
			fx := loadFixture(t, tc.version, tc.fixture)
			var ra recordedAccount
			requestBody(t, fx, &ra)
			mapping := map[string]string{}
			if mm, ok := ra.Credentials["model_mapping"].(map[string]any); ok {
				for k, v := range mm {
					mapping[k] = v.(string)
				}
			}
			if sc, ok := ra.Extra["model_scope_v2"].(map[string]any); ok {
				for _, e := range sc["entries"].([]any) {
					em := e.(map[string]any)
					mapping[em["display_model_id"].(string)] = em["target_model_id"].(string)
				}
			}
			p, _ := ProfileByName(tc.version)
			s := p.AccountSpec(tc.provider, ra.Credentials["base_url"].(string), ra.Credentials["api_key"].(string), mapping)
			if s.Platform != ra.Platform || s.GatewayProtocol != ra.GatewayProtocol {
				t.Errorf("platform %s/%s, recorded %s/%s", s.Platform, s.GatewayProtocol, ra.Platform, ra.GatewayProtocol)
			}
			creds := map[string]any{}
			for k, v := range s.Credentials {
				if k != "account_mode" { // the recording relied on the host default (payg)
					creds[k] = v
				}
			}
			a, _ := json.Marshal(creds)
			b, _ := json.Marshal(ra.Credentials)
			if !jsonEqual(t, a, b) {
				t.Errorf("credentials %s, recorded %s", a, b)
			}
			a, _ = json.Marshal(s.Extra)
			b, _ = json.Marshal(ra.Extra)
			if !jsonEqual(t, a, b) {
				t.Errorf("extra %s, recorded %s", a, b)
			}
		})
	}
}

// A key joins an existing group of another platform only where the host would schedule
// it: native CN platforms fall back to openai + forced chat completions in an openai group.
func TestAccountSpecOn(t *testing.T) {
	p179, _ := ProfileByName(Profile179)
	native, err := p179.AccountSpecOn("deepseek", "deepseek", "https://api.deepseek.com", "sk-x", map[string]string{"deepseek-flash": "deepseek-flash"})
	if err != nil || native.Platform != "deepseek" {
		t.Fatalf("deepseek group: %+v %v", native, err)
	}
	generic, err := p179.AccountSpecOn("openai", "deepseek", "https://api.deepseek.com", "sk-x", map[string]string{"deepseek-flash": "deepseek-flash"})
	if err != nil || generic.Platform != "openai" || generic.GroupPlatform != "openai" || generic.Extra["openai_responses_mode"] != "force_chat_completions" {
		t.Fatalf("openai group: %+v %v", generic, err)
	}
	if _, err := p179.AccountSpecOn("anthropic", "deepseek", "https://api.deepseek.com", "sk-x", nil); !errors.Is(err, ErrGroupPlatform) {
		t.Fatalf("anthropic group accepted: %v", err)
	}
	if again, _ := ProfileByName(Profile179); again.NativePlatforms["deepseek"] != "deepseek" {
		t.Fatal("AccountSpecOn changed the profile table")
	}
	pf, _ := ProfileByName(ProfileFork)
	if s, err := pf.AccountSpecOn("openai", "kimi", "https://api.moonshot.cn/v1", "sk-x", nil); err != nil || s.Platform != "protocol_gateway" {
		t.Fatalf("fork openai group: %+v %v", s, err)
	}
}
