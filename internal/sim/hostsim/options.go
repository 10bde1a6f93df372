package hostsim

import (
	"net/http"
	"time"
)

// Profile names accepted in Options.Profile.
const (
	Profile179  = "0.1.179"
	Profile129  = "0.1.129"
	ProfileFork = "fork-0.1.321"
	// Profile02 is upstream 0.2.x as its release notes describe it (latest 0.2.15): the
	// 0.1.179 behaviour plus model_allowlist, the native minimax platform and the API-key
	// creation limits. No real 0.2.x host was recorded.
	Profile02 = "0.2.15"
)

// Profiles lists every profile the simulator serves, recorded ones first.
var Profiles = []string{Profile179, Profile129, ProfileFork, Profile02}

// Options configures a simulated host.
type Options struct {
	Profile          string // "0.1.179" (default), "0.1.129", "fork-0.1.321", "0.2.15"
	AdminAPIKey      string // required x-api-key; default "admin-" + 64*"0"
	AdminEmail       string // admin user 1 for JWT login; default "admin@example.com"
	AdminPassword    string // default "Admin-Pw-123!"
	ComplianceLocked bool   // 179 only: admin routes answer 423 until user 1 accepts the compliance text
	Default          Behavior
	// Behavior overrides Default per account (may be nil); it is called once
	// at account creation. A zero Behavior falls back to Default.
	Behavior func(a AccountView) Behavior
	Latency  time.Duration // added to every request (routing delay)
	// FaultRate is the fraction (0..1) of admin requests answered
	// 500 {"code":500,"message":"internal error"} before doing anything.
	FaultRate float64
	// TimeoutRate is the fraction (0..1) of admin requests that get no answer: the
	// request hangs until the client gives up (or TimeoutHang has passed), then its
	// connection is closed.
	TimeoutRate float64
	// TimeoutHang bounds how long a TimeoutRate request hangs before its connection is
	// closed; 0 = until the client gives up (the request's context ends).
	TimeoutHang time.Duration
	// DropRate is the fraction (0..1) of admin requests whose connection is closed
	// without an answer.
	DropRate float64
	// LoseAnswers makes the TimeoutRate and DropRate faults strike after the request was
	// handled: a write takes effect on the host but its answer is lost (the hard case for
	// idempotency). Without it they strike before the host does anything, like FaultRate.
	// FaultRate, TimeoutRate and DropRate are drawn from one number per request, so they
	// are exclusive and add up.
	LoseAnswers bool
	// IdempotentWrite is how long a write carrying an Idempotency-Key (account create,
	// balance change, key create) is in flight; a second request with the same key meanwhile
	// gets 409 IDEMPOTENCY_IN_PROGRESS, as on the real hosts. 0 = DefaultIdempotentWrite,
	// negative = no in-flight window.
	IdempotentWrite time.Duration
	// OutboundPolicy, when set, is the host's outbound URL policy (sub2api's
	// security.url_allowlist turned on). 0.1.129 and 0.1.179 accept any account and refuse
	// to call a base URL it forbids: the account test answers an "Invalid base URL: …" error
	// event and the gateway 502 upstream_error. The fork refuses the account itself: 400
	// ACCOUNT_INVALID_BASE_URL on create and update.
	OutboundPolicy *OutboundPolicy
	// KeyLimits overrides the 0.2.15 profile's API-key creation limits per user (0.2.11+:
	// 200 active keys, 60 creations per hour); a zero value keeps the profile's. Negative
	// numbers turn a limit off.
	KeyLimits      KeyLimits
	Now            func() time.Time // default time.Now
	UpstreamClient *http.Client     // used to call account upstreams; default 30s timeout
}

// OutboundPolicy is a host's outbound URL policy (security.url_allowlist.*).
type OutboundPolicy struct {
	UpstreamHosts     []string // allowed upstream host names ("*.example.com" allowed)
	AllowPrivateHosts bool     // loopback and private addresses allowed
	// AllowInsecureHTTP lets the fork accept http:// base URLs; 0.1.129 and 0.1.179 ignore
	// it when they forward (their gateway always demands https under the policy).
	AllowInsecureHTTP bool
}

// Behavior describes the warm-up quirks of one account.
type Behavior struct {
	// TestWarmups: the first N account tests fail as during warm-up (a 200
	// event stream with test_start and an "account is warming up" 403 error
	// event) without calling the upstream.
	TestWarmups int
	// ChatWarmup: for this long after creation the account is ignored by
	// gateway routing (/v1/models and chat).
	ChatWarmup time.Duration
	// WarmupFromFirstUse starts the ChatWarmup period at the first gateway request
	// that considers the account instead of at its creation, so every account is seen
	// warming up for the full period however late it is first used (load tests).
	WarmupFromFirstUse bool
	// UnknownKeyCache: a gateway call with a key value that does not exist
	// yet is cached as invalid for this long after that premature call.
	UnknownKeyCache time.Duration
}

// AccountView is what Options.Behavior sees of a new account.
type AccountView struct {
	ID                    int64
	Name, Notes, Platform string
	APIKey, BaseURL       string
}

func (b Behavior) isZero() bool { return b == Behavior{} }

// KeyLimits are sub2api's per-user API-key creation limits (api_key_create.* since 0.2.11).
type KeyLimits struct {
	MaxActive  int // non-deleted keys a user may hold (disabled and expired ones count)
	MaxPerHour int // creation attempts per user in a fixed one-hour window
}
