package host

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Model mapping styles.
const (
	MappingModelMapping = "model_mapping"  // credentials.model_mapping {public: upstream}
	MappingScopeV2      = "model_scope_v2" // fork: extra.model_scope_v2 entries
)

// Profile is what the product must do differently per host version (product §7, host
// contract §1, §8, §14, §15). Profiles are data: see the profiles table below.
type Profile struct {
	Name                       string            // "0.1.129", "0.1.179", "fork-0.1.321"
	NativePlatforms            map[string]string // provider id -> host platform used natively
	ModelMappingStyle          string            // MappingModelMapping or MappingScopeV2
	AccountTestTrustedChatOnly bool              // false on 0.1.129: the test cannot check chat-only/forced accounts
	UnknownModelStatus         int               // gateway status for a model outside every mapping
	WarmupGatewayCodes         []string          // gateway codes/types meaning "not routed yet"
	ComplianceGate             bool              // 423 on admin routes until the acting admin accepts
	ClearErrorNeedsSchedulable bool              // clear-error leaves schedulable false (0.1.179)

	// KeyNotVisibleCodes are gateway codes for a key the host does not know yet (its
	// negative key cache); retried inside the confirmation window like warm-up codes.
	KeyNotVisibleCodes []string
	// GroupPlatforms are the group platforms the host accepts.
	GroupPlatforms []string
	// RateMultiplierRequired: creating a group without rate_multiplier gives 500.
	RateMultiplierRequired bool
	// UnknownGroupCreatesOrphan: an unknown group id on account create answers 500 and the
	// account exists anyway (find it by name and delete it before retrying).
	UnknownGroupCreatesOrphan bool
	// PlatformMismatchRejected: account platform ≠ group platform is refused (else accepted
	// silently and never scheduled).
	PlatformMismatchRejected bool
	// AccountTestEnforcesMapping: testing a model outside the mapping is refused (400).
	AccountTestEnforcesMapping bool
	// AccountTestNotFoundStatus is the HTTP status of a test for an unknown account (200 with
	// one error event on 129/179).
	AccountTestNotFoundStatus int
	// AuthErrorUnschedules: an upstream 401/402 also sets schedulable:false.
	AuthErrorUnschedules bool
	// RateLimitCooldown is how long an upstream 429 parks the account.
	RateLimitCooldown time.Duration
	// NonStreamChatMaySayEventStream: non-stream chat answers may carry Content-Type
	// text/event-stream with a JSON body.
	NonStreamChatMaySayEventStream bool
	// EmptyGroupModelsCatalog: /v1/models of a group without account returns a built-in GPT
	// catalog (so a non-empty list proves nothing).
	EmptyGroupModelsCatalog bool
	// ResponsesModeHonoured: extra.openai_responses_mode is honoured.
	ResponsesModeHonoured bool
	// RedactedCredentialMarker is the placeholder the host returns for api_key ("" = omitted).
	RedactedCredentialMarker string
	// KeyGroupDeletedCode is the gateway code for a key whose group was deleted.
	KeyGroupDeletedCode string
	// GroupModelAllowlist: groups carry model_allowlist {enabled, models} (0.2.3+), and an
	// enabled allowlist refuses other models at the gateway with 404 before routing.
	GroupModelAllowlist bool
	// KeyCreateMaxActive and KeyCreateMaxPerHour are the per-user API-key creation limits
	// (0.2.11+: 200 non-deleted keys, 60 creations per fixed hour; 0 = none). The import
	// keeps one key per (managed user, group) to stay far below them.
	KeyCreateMaxActive  int
	KeyCreateMaxPerHour int
	// Exercised is false for profiles only derived from source reading or release notes.
	Exercised bool
	// Source says where the profile's behaviour comes from, for operators and docs.
	Source string
}

// IsWarmup reports whether err is a gateway answer that, on this profile, means the group
// does not route the account (or the key) yet, so a smoke call should be retried inside the
// confirmation window rather than failed.
func (p Profile) IsWarmup(err error) bool {
	he, ok := AsError(err)
	if !ok || he.Code == "" {
		return false
	}
	for _, c := range p.WarmupGatewayCodes {
		if he.Code == c {
			return true
		}
	}
	for _, c := range p.KeyNotVisibleCodes {
		if he.Code == c {
			return true
		}
	}
	return false
}

// profiles is the table of known hosts. Keep it data: the pipeline reads these fields and
// never branches on the version string itself.
var profiles = []Profile{
	{
		Name:                           "0.1.129",
		NativePlatforms:                map[string]string{},
		ModelMappingStyle:              MappingModelMapping,
		AccountTestTrustedChatOnly:     false,
		UnknownModelStatus:             503,
		WarmupGatewayCodes:             []string{"api_error"},
		KeyNotVisibleCodes:             []string{"INVALID_API_KEY"},
		GroupPlatforms:                 []string{"anthropic", "openai", "gemini", "antigravity"},
		RateMultiplierRequired:         true,
		UnknownGroupCreatesOrphan:      true,
		AccountTestNotFoundStatus:      200,
		RateLimitCooldown:              5 * time.Second,
		NonStreamChatMaySayEventStream: true,
		EmptyGroupModelsCatalog:        true,
		ResponsesModeHonoured:          true,
		KeyGroupDeletedCode:            "GROUP_DELETED",
		Exercised:                      true,
		Source:                         "recorded from a real 0.1.129 host",
	},
	{
		Name:                       "0.1.179",
		NativePlatforms:            map[string]string{"deepseek": "deepseek", "kimi": "kimi", "glm": "zhipu"},
		ModelMappingStyle:          MappingModelMapping,
		AccountTestTrustedChatOnly: true,
		UnknownModelStatus:         404,
		WarmupGatewayCodes:         []string{"api_error", "model_not_found"},
		KeyNotVisibleCodes:         []string{"INVALID_API_KEY"},
		ComplianceGate:             true,
		ClearErrorNeedsSchedulable: true,
		GroupPlatforms: []string{"anthropic", "openai", "gemini", "antigravity",
			"grok", "kimi", "zhipu", "deepseek", "composite"},
		RateMultiplierRequired:    true,
		UnknownGroupCreatesOrphan: true,
		AccountTestNotFoundStatus: 200,
		AuthErrorUnschedules:      true,
		RateLimitCooldown:         5 * time.Second,
		EmptyGroupModelsCatalog:   true,
		ResponsesModeHonoured:     true,
		KeyGroupDeletedCode:       "GROUP_DELETED",
		Exercised:                 true,
		Source:                    "recorded from a real 0.1.179 host",
	},
	{
		// Upstream 0.2.x: the 0.1.179 line plus what the 0.2.0–0.2.15 release notes and
		// source excerpts say (model_allowlist, native minimax, key creation limits). No
		// 0.2.x host was run here.
		Name:                       "0.2.15",
		NativePlatforms:            map[string]string{"deepseek": "deepseek", "kimi": "kimi", "glm": "zhipu", "minimax": "minimax"},
		ModelMappingStyle:          MappingModelMapping,
		AccountTestTrustedChatOnly: true,
		UnknownModelStatus:         404,
		WarmupGatewayCodes:         []string{"api_error", "model_not_found"},
		KeyNotVisibleCodes:         []string{"INVALID_API_KEY"},
		ComplianceGate:             true,
		ClearErrorNeedsSchedulable: true,
		GroupPlatforms: []string{"anthropic", "openai", "gemini", "antigravity",
			"grok", "kimi", "zhipu", "deepseek", "composite", "minimax", "opencode_go", "typesafe", "cline"},
		RateMultiplierRequired:    true,
		UnknownGroupCreatesOrphan: true,
		AccountTestNotFoundStatus: 200,
		AuthErrorUnschedules:      true,
		RateLimitCooldown:         5 * time.Second,
		EmptyGroupModelsCatalog:   true,
		ResponsesModeHonoured:     true,
		KeyGroupDeletedCode:       "GROUP_DELETED",
		GroupModelAllowlist:       true,
		KeyCreateMaxActive:        200,
		KeyCreateMaxPerHour:       60,
		Exercised:                 false,
		Source:                    "0.1.179 recordings plus the 0.2.0–0.2.15 release notes (no 0.2.x host recorded)",
	},
	{
		Name:                       "fork-0.1.321",
		NativePlatforms:            map[string]string{"deepseek": "deepseek"},
		ModelMappingStyle:          MappingScopeV2,
		AccountTestTrustedChatOnly: true,
		UnknownModelStatus:         503,
		WarmupGatewayCodes:         []string{"GROUP_EXHAUSTED"},
		KeyNotVisibleCodes:         []string{"INVALID_API_KEY", "UNAUTHENTICATED"},
		GroupPlatforms: []string{"anthropic", "openai", "gemini", "antigravity",
			"grok", "kiro", "deepseek", "baidu_document_ai"},
		PlatformMismatchRejected:       true,
		AccountTestEnforcesMapping:     true,
		AccountTestNotFoundStatus:      404,
		RateLimitCooldown:              300 * time.Second,
		NonStreamChatMaySayEventStream: true,
		RedactedCredentialMarker:       redactedPlaceholder,
		KeyGroupDeletedCode:            "permission_error",
		Exercised:                      true,
		Source:                         "recorded from a real fork 0.1.321 host",
	},
}

// Profile names, for ProfileByName.
const (
	Profile129  = "0.1.129"
	Profile179  = "0.1.179"
	Profile02   = "0.2.15"
	ProfileFork = "fork-0.1.321"
)

// Profiles returns a copy of every known profile.
func Profiles() []Profile {
	out := make([]Profile, len(profiles))
	for i, p := range profiles {
		out[i] = p.clone()
	}
	return out
}

// ProfileByName returns the profile with that name.
func ProfileByName(name string) (Profile, bool) {
	for _, p := range profiles {
		if p.Name == name {
			return p.clone(), true
		}
	}
	return Profile{}, false
}

func mustProfile(name string) Profile {
	p, ok := ProfileByName(name)
	if !ok {
		panic("host: unknown built-in profile " + name)
	}
	return p
}

// clone copies maps and slices so callers cannot change the table.
func (p Profile) clone() Profile {
	np := make(map[string]string, len(p.NativePlatforms))
	for k, v := range p.NativePlatforms {
		np[k] = v
	}
	p.NativePlatforms = np
	p.WarmupGatewayCodes = append([]string(nil), p.WarmupGatewayCodes...)
	p.KeyNotVisibleCodes = append([]string(nil), p.KeyNotVisibleCodes...)
	p.GroupPlatforms = append([]string(nil), p.GroupPlatforms...)
	return p
}

// Features are what probing saw, used to confirm or override the version number (forks
// carry their own numbers).
type Features struct {
	ComplianceRoute bool // GET /api/v1/admin/compliance exists (or an admin route answered 423)
	ForkMarkers     bool // fork-only fields in public settings or accounts
}

// Version is a parsed host version: MAJOR.MINOR.PATCH with an optional fourth fork number
// and pre-release/build suffix ("v0.2.15", "0.1.321.4", "0.2.14-custom.1+g10").
type Version struct {
	Major, Minor, Patch int
	Extra               string // everything after the three numbers, "" for a plain release
}

// ParseVersion parses a host version string; ok is false when it is not MAJOR.MINOR.PATCH.
func ParseVersion(v string) (Version, bool) {
	v = strings.TrimPrefix(strings.TrimSpace(v), "v")
	var nums [3]int
	rest := v
	for i := range nums {
		end := 0
		for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
			end++
		}
		if end == 0 || end > 6 {
			return Version{}, false
		}
		nums[i], _ = strconv.Atoi(rest[:end])
		rest = rest[end:]
		if i < 2 {
			if !strings.HasPrefix(rest, ".") {
				return Version{}, false
			}
			rest = rest[1:]
		}
	}
	return Version{Major: nums[0], Minor: nums[1], Patch: nums[2], Extra: rest}, true
}

// Less orders versions by their three numbers.
func (v Version) Less(o Version) bool {
	if v.Major != o.Major {
		return v.Major < o.Major
	}
	if v.Minor != o.Minor {
		return v.Minor < o.Minor
	}
	return v.Patch < o.Patch
}

func (v Version) String() string {
	return fmt.Sprintf("%d.%d.%d%s", v.Major, v.Minor, v.Patch, v.Extra)
}

// DetectProfile picks the profile for a version confirmed by features. An exactly known
// version gets its profile without warning (a profile built from release notes only says
// so); anything else gets the closest known profile and a warning saying why.
func DetectProfile(version string, features Features) (p Profile, warning string) {
	v := strings.TrimPrefix(strings.TrimSpace(version), "v")
	ver, ok := ParseVersion(v)
	latest, _ := ParseVersion(Profile02)
	notesOnly := func(p Profile, why string) (Profile, string) {
		w := fmt.Sprintf("host version %s: using the %s profile, built from %s", version, p.Name, p.Source)
		if why != "" {
			w += "; " + why
		}
		return p, w
	}
	switch {
	case features.ForkMarkers:
		if v == "0.1.321" {
			return mustProfile(ProfileFork), ""
		}
		return mustProfile(ProfileFork), fmt.Sprintf("host %q shows fork markers; using the %s profile (not exercised on this version)", version, ProfileFork)
	case ok && ver.Major == latest.Major && ver.Minor == latest.Minor && ver.Patch == latest.Patch:
		return notesOnly(mustProfile(Profile02), "")
	case ok && ver.Major == 0 && ver.Minor == 2 && ver.Less(latest):
		return notesOnly(mustProfile(Profile02), "an older 0.2.x release: behaviours added after it (key creation limits since 0.2.11) may be absent, which the import tolerates")
	case ok && latest.Less(ver):
		return notesOnly(mustProfile(Profile02), fmt.Sprintf("%s is newer than every known release (latest known %s); check the import on this host before relying on it", ver, Profile02))
	case v == "0.1.129" && !features.ComplianceRoute:
		return mustProfile(Profile129), ""
	case v == "0.1.179" && features.ComplianceRoute:
		return mustProfile(Profile179), ""
	case v == "0.1.179":
		return mustProfile(Profile179), "host reports 0.1.179 but has no compliance route; using the 0.1.179 profile, check the host build"
	case v == "0.1.321" && !features.ComplianceRoute:
		return mustProfile(ProfileFork), ""
	case features.ComplianceRoute && (!ok || ver.Major == 0 && ver.Minor == 1):
		return mustProfile(Profile179), fmt.Sprintf("host version %q not exercised; it has the compliance gate, so the %s profile is used", version, Profile179)
	case !ok:
		return mustProfile(Profile129), fmt.Sprintf("host version %q not recognised; using the conservative %s profile (openai + forced chat completions)", version, Profile129)
	case ver.Major == 0 && ver.Minor == 1 && ver.Patch < 129:
		return mustProfile(Profile129), fmt.Sprintf("host version %s is older than 0.1.129 and was not exercised; 0.1.1x releases lack /v1/chat/completions, refuse imports if the smoke test fails", version)
	case ver.Major == 0 && ver.Minor == 1 && ver.Patch <= 179:
		return mustProfile(Profile129), fmt.Sprintf("host version %s was not exercised and has no compliance route; using the conservative %s profile", version, Profile129)
	case ver.Major == 0 && ver.Minor == 1:
		return mustProfile(ProfileFork), fmt.Sprintf("host version %s is above the latest upstream 0.1 release and has no compliance gate: assuming a 0.1.12x-line fork (%s profile)", version, ProfileFork)
	default:
		return mustProfile(Profile129), fmt.Sprintf("host version %s is older than every known profile; using the conservative %s profile", version, Profile129)
	}
}

// Detect probes the host read-only (public settings, system version, compliance route) and
// picks a profile. It never writes: in particular it never accepts compliance and never
// touches the admin API key. A 423 on the version route is a compliance gate, reported in
// the warning rather than as an error.
func (c *Client) Detect(ctx context.Context) (version string, p Profile, warning string, err error) {
	var feats Features
	var warnings []string
	ps, perr := c.PublicSettings(ctx)
	if perr == nil {
		version = ps.Version
		feats.ForkMarkers = ps.ForkMarkers
		if ps.TurnstileEnabled || ps.CaptchaEnabled {
			warnings = append(warnings, "login captcha enabled: end-user logins (key creation) are impossible")
		}
		if ps.BackendModeEnabled {
			warnings = append(warnings, "backend mode enabled: non-admin logins are refused, no end-user keys")
		}
		if ps.TOTPEnabled {
			warnings = append(warnings, "TOTP enabled: admin login may require 2FA")
		}
	}
	sv, serr := c.SystemVersion(ctx)
	switch {
	case serr == nil:
		if sv != "" {
			version = sv
		}
	case IsComplianceLocked(serr):
		feats.ComplianceRoute = true
		warnings = append(warnings, fmt.Sprintf("compliance acknowledgement required (version %s)", ComplianceVersion(serr)))
	default:
		return version, Profile{}, "", fmt.Errorf("detect: %w", serr)
	}
	cs, cerr := c.Compliance(ctx)
	if cerr != nil {
		return version, Profile{}, "", fmt.Errorf("detect: %w", cerr)
	}
	if cs.Supported {
		feats.ComplianceRoute = true
		if cs.Required && serr == nil {
			warnings = append(warnings, fmt.Sprintf("compliance acknowledgement required (version %s)", cs.Version))
		}
	}
	if version == "" && perr != nil {
		return "", Profile{}, "", fmt.Errorf("detect: %w", perr)
	}
	p, w := DetectProfile(version, feats)
	if w != "" {
		warnings = append([]string{w}, warnings...)
	}
	return version, p, strings.Join(warnings, "; "), nil
}

// AccountSpec is how one provider key becomes a host account on a profile.
type AccountSpec struct {
	Platform      string
	Type          string
	GroupPlatform string // the group's platform must equal this for the account to be scheduled
	Credentials   map[string]any
	Extra         map[string]any
	// UpstreamPath is the URL path the host will call on the upstream for chat (derived from
	// base_url with the host's URL rule), for checking against direct probes.
	UpstreamPath string
	// GatewayProtocol goes into CreateAccountRequest.GatewayProtocol (fork protocol_gateway).
	GatewayProtocol string
}

// CreateRequest fills a CreateAccountRequest from the spec.
func (s AccountSpec) CreateRequest(name, notes string, groupIDs []int64, concurrency, priority int) CreateAccountRequest {
	return CreateAccountRequest{Name: name, Notes: notes, Platform: s.Platform, Type: s.Type,
		Credentials: s.Credentials, Extra: s.Extra, Concurrency: concurrency, Priority: priority,
		GroupIDs: groupIDs, GatewayProtocol: s.GatewayProtocol}
}

// ErrGroupPlatform is returned by AccountSpecOn when a key cannot join a group of that
// platform on this profile.
var ErrGroupPlatform = errors.New("group platform does not fit the key")

// AccountSpecOn returns the account to create for a provider key that must join an
// existing group of platform groupPlatform: the profile's own spec when the platforms
// agree; the OpenAI-compatible spec (openai + forced chat completions) when the group is
// an openai group and the profile would have used a native CN platform, since every
// provider this product imports speaks the OpenAI protocol; ErrGroupPlatform otherwise
// (an account whose platform differs from its group's is never scheduled).
func (p Profile) AccountSpecOn(groupPlatform, providerID, baseURL, apiKey string, mapping map[string]string) (AccountSpec, error) {
	spec := p.AccountSpec(providerID, baseURL, apiKey, mapping)
	if groupPlatform == "" || groupPlatform == spec.GroupPlatform {
		return spec, nil
	}
	if groupPlatform == "openai" {
		q := p.clone()
		q.NativePlatforms = map[string]string{}
		if generic := q.AccountSpec(providerID, baseURL, apiKey, mapping); generic.GroupPlatform == "openai" {
			return generic, nil
		}
	}
	return spec, fmt.Errorf("%w: a %s key needs a %s (or openai) group on this host, the group is %s",
		ErrGroupPlatform, providerID, spec.GroupPlatform, groupPlatform)
}

// AccountSpec returns the account to create for a provider key on this profile:
//   - 0.1.129: platform openai + extra.openai_responses_mode=force_chat_completions for every
//     provider (deterministic chat passthrough; the Responses path breaks chat-only upstreams);
//   - 0.1.179: native deepseek/kimi/zhipu for deepseek/kimi/glm (credentials.account_mode
//     "payg", or "coding" for coding-plan bases), else openai + force_chat_completions;
//   - fork: deepseek on the native deepseek platform with plain model_mapping and no extra;
//     everything else protocol_gateway (gateway_protocol openai, chat-completions request
//     format) with extra.model_scope_v2, and a full .../chat/completions base_url when the
//     base's version segment is not /v1.
func (p Profile) AccountSpec(providerID, baseURL, apiKey string, mapping map[string]string) AccountSpec {
	base := strings.TrimRight(strings.TrimSpace(baseURL), "/")
	creds := map[string]any{"api_key": apiKey, "base_url": base}
	native, isNative := p.NativePlatforms[providerID]
	if p.ModelMappingStyle == MappingScopeV2 {
		if isNative {
			if len(mapping) > 0 {
				creds["model_mapping"] = copyMapping(mapping)
			}
			return AccountSpec{Platform: native, Type: "apikey", GroupPlatform: native, Credentials: creds,
				UpstreamPath: urlPath(base + "/chat/completions")}
		}
		endpoint := forkChatEndpoint(base)
		if needsFullEndpoint(base) {
			base = base + "/chat/completions"
			creds["base_url"] = base
		}
		extra := map[string]any{"gateway_openai_request_format": "/v1/chat/completions"}
		if len(mapping) > 0 {
			extra["model_scope_v2"] = scopeV2(mapping)
		}
		return AccountSpec{Platform: "protocol_gateway", Type: "apikey", GroupPlatform: "openai",
			Credentials: creds, Extra: extra, UpstreamPath: urlPath(endpoint), GatewayProtocol: "openai"}
	}
	if len(mapping) > 0 {
		creds["model_mapping"] = copyMapping(mapping)
	}
	path := urlPath(upstreamChatEndpoint(base))
	if isNative {
		mode := "payg"
		if strings.Contains(strings.ToLower(base), "/coding") {
			mode = "coding"
		}
		creds["account_mode"] = mode
		return AccountSpec{Platform: native, Type: "apikey", GroupPlatform: native, Credentials: creds, UpstreamPath: path}
	}
	return AccountSpec{Platform: "openai", Type: "apikey", GroupPlatform: "openai", Credentials: creds,
		Extra: map[string]any{"openai_responses_mode": "force_chat_completions"}, UpstreamPath: path}
}

func copyMapping(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// scopeV2 expresses a mapping as the fork's model_scope_v2, entries sorted by public id so
// that the request body (and its idempotency fingerprint) is stable.
func scopeV2(m map[string]string) map[string]any {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	entries := make([]any, 0, len(keys))
	for _, k := range keys {
		entries = append(entries, map[string]any{"display_model_id": k, "target_model_id": m[k]})
	}
	return map[string]any{"policy_mode": "mapping", "entries": entries}
}

// versionSegment matches a path segment that is an API version (v1, v3, v4, v1beta, ...).
var versionSegment = regexp.MustCompile(`^v\d+[a-z0-9]*$`)

func lastSegment(base string) string {
	u, err := url.Parse(base)
	path := base
	if err == nil {
		path = u.Path
	}
	path = strings.TrimRight(path, "/")
	if i := strings.LastIndex(path, "/"); i >= 0 {
		return path[i+1:]
	}
	return path
}

// upstreamChatEndpoint applies the 129/179 URL rule: a base ending with the endpoint is
// used as is; a base whose last segment is a version gets /chat/completions; anything else
// gets /v1/chat/completions.
func upstreamChatEndpoint(base string) string {
	switch {
	case strings.HasSuffix(base, "/chat/completions"):
		return base
	case versionSegment.MatchString(lastSegment(base)):
		return base + "/chat/completions"
	default:
		return base + "/v1/chat/completions"
	}
}

// forkChatEndpoint applies the fork's protocol_gateway rule: /v1 gets /chat/completions, a
// full endpoint is kept, anything else gets /v1/chat/completions (so a full endpoint must be
// given for /api/paas/v4-style bases; AccountSpec does that).
func forkChatEndpoint(base string) string {
	switch {
	case strings.HasSuffix(base, "/chat/completions"):
		return base
	case strings.HasSuffix(base, "/v1") || needsFullEndpoint(base):
		return base + "/chat/completions"
	default:
		return base + "/v1/chat/completions"
	}
}

// needsFullEndpoint reports whether the fork would mangle base (a version segment other
// than v1, e.g. Zhipu /api/paas/v4, Ark /api/v3, Qianfan /v2).
func needsFullEndpoint(base string) bool {
	seg := lastSegment(base)
	return seg != "v1" && versionSegment.MatchString(seg) && !strings.HasSuffix(base, "/chat/completions")
}

func urlPath(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || u.Path == "" {
		return endpoint
	}
	return u.Path
}
