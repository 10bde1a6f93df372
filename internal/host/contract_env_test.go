package host_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/catalog"
	"github.com/cn-relay-manager/cn-relay-manager/internal/host"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/hostsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/upstreamsim"
)

// Environment variables that point the contract suite at a real host (see contract_test.go).
const (
	envHostURL       = "CRM_TEST_HOST_URL"        // admin base URL of the host; setting it selects the real host
	envHostPublicURL = "CRM_TEST_HOST_PUBLIC_URL" // optional gateway base URL (default: CRM_TEST_HOST_URL)
	envAdminKey      = "CRM_TEST_HOST_ADMIN_KEY"  // admin API key (x-api-key)
	envUpstreamURL   = "CRM_TEST_UPSTREAM_URL"    // OpenAI-compatible base URL the host can reach
	envUpstreamKey   = "CRM_TEST_UPSTREAM_KEY"    // key for that upstream
	envUpstreamModel = "CRM_TEST_UPSTREAM_MODEL"  // optional model id (default: picked from the upstream's /models)
	envProvider      = "CRM_TEST_PROVIDER"        // optional provider id/name hint for the account recipe
)

// contractTarget is one host the suite runs against, with the upstream its account uses.
type contractTarget struct {
	name        string // subtest name
	client      *host.Client
	wantProfile string // expected profile name; "" = whatever Detect says (real host)
	real        bool

	providerID    string // catalog provider the account recipe is built for
	upstreamBase  string
	upstreamKey   string
	upstreamModel string // requested model ("" = default pick)

	// retryFor bounds the wait for warm-up answers (account not routed yet, key not visible).
	retryFor time.Duration
	pause    time.Duration
}

// realTarget returns the target described by the environment, or nil when CRM_TEST_HOST_URL
// is not set. Missing companions are a configuration error, not a skip.
func realTarget(t *testing.T) *contractTarget {
	hostURL := strings.TrimSpace(os.Getenv(envHostURL))
	if hostURL == "" {
		return nil
	}
	var missing []string
	for _, k := range []string{envAdminKey, envUpstreamURL, envUpstreamKey} {
		if strings.TrimSpace(os.Getenv(k)) == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%s is set but %s missing", envHostURL, strings.Join(missing, ", "))
	}
	cat := catalog.Default()
	base := strings.TrimSpace(os.Getenv(envUpstreamURL))
	n, err := cat.NormalizeURL(base)
	if err != nil {
		t.Fatalf("%s: %v", envUpstreamURL, err)
	}
	key := strings.TrimSpace(os.Getenv(envUpstreamKey))
	det := cat.Detect(n.BaseURL, key, os.Getenv(envProvider))
	return &contractTarget{
		name: "real",
		client: host.New(host.Config{AdminURL: hostURL, PublicURL: os.Getenv(envHostPublicURL),
			AdminAPIKey: os.Getenv(envAdminKey), Timeout: 2 * time.Minute}),
		real:          true,
		providerID:    det.ProviderID,
		upstreamBase:  n.BaseURL,
		upstreamKey:   key,
		upstreamModel: strings.TrimSpace(os.Getenv(envUpstreamModel)),
		retryFor:      2 * time.Minute,
		pause:         2 * time.Second,
	}
}

// simTargets starts one simulated host per profile and one simulated upstream, and returns
// a target per (profile, provider): the generic relay everywhere, plus DeepSeek, which
// 0.1.179 and the fork import on their native deepseek platform.
func simTargets(t *testing.T) []*contractTarget {
	up, err := upstreamsim.Start(upstreamsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.Close)
	key := strings.TrimSpace(os.Getenv(envUpstreamKey))
	if key == "" {
		key = "sk-contract-" + randomHex(t, 16)
	}
	up.AddKey(key, upstreamsim.ModeOK)
	var out []*contractTarget
	for _, profile := range hostsim.Profiles {
		sim, err := hostsim.Start(hostsim.Options{Profile: profile})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sim.Close)
		c := host.New(host.Config{AdminURL: sim.URL(), AdminAPIKey: "admin-" + strings.Repeat("0", 64)})
		for _, prov := range []string{catalog.OpenAICompatible, "deepseek"} {
			out = append(out, &contractTarget{name: prov, client: c, wantProfile: profile,
				providerID: prov, upstreamBase: up.BaseURL(prov), upstreamKey: key,
				retryFor: 5 * time.Second, pause: 20 * time.Millisecond})
		}
	}
	return out
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// upstreamModels reads GET {base}/models of the upstream (nil when it has no usable list).
func upstreamModels(ctx context.Context, base, key string) []string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/models", nil)
	if err != nil {
		return nil
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &list) != nil {
		return nil
	}
	ids := make([]string, 0, len(list.Data))
	for _, m := range list.Data {
		ids = append(ids, m.ID)
	}
	return ids
}

// pickModel resolves the model the account maps to, as an import would: the requested one
// (corrected), else the default pick, against the upstream's own list.
func (tg *contractTarget) pickModel(t *testing.T, ctx context.Context) string {
	var req []string
	if tg.upstreamModel != "" {
		req = []string{tg.upstreamModel}
	}
	res := catalog.Default().ResolveModels(tg.providerID, req, upstreamModels(ctx, tg.upstreamBase, tg.upstreamKey))
	if res.SmokeModel == "" {
		t.Fatalf("no chat model for provider %s at the upstream (corrections %+v); set %s", tg.providerID, res.Corrections, envUpstreamModel)
	}
	return res.SmokeModel
}

// eventually repeats fn while the host answers with a warm-up code of the profile (account
// not routed yet, key not visible yet) or done reports false, up to tg.retryFor.
func (tg *contractTarget) eventually(ctx context.Context, p host.Profile, fn func() (done bool, err error)) error {
	deadline := time.Now().Add(tg.retryFor)
	for {
		done, err := fn()
		switch {
		case err == nil && done:
			return nil
		case err != nil && !p.IsWarmup(err):
			return err
		case time.Now().After(deadline):
			if err == nil {
				err = errors.New("condition not met")
			}
			return fmt.Errorf("still not ready after %s: %w", tg.retryFor, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(tg.pause):
		}
	}
}

// wantHostError fails unless err is a host *Error with the status and (when non-empty) code.
func wantHostError(t *testing.T, what string, err error, status int, code string) *host.Error {
	t.Helper()
	he, ok := host.AsError(err)
	if !ok {
		t.Errorf("%s: want host error %d %s, got %v", what, status, code, err)
		return nil
	}
	if he.Status != status || (code != "" && he.Code != code) {
		t.Errorf("%s: want %d %s, got %d %q (%s)", what, status, code, he.Status, he.Code, he.Message)
	}
	return he
}

// TestHostContractEnvPlumbing runs the "real host" path of the suite (configuration from
// the environment, provider detected from the upstream URL, model picked from its /models)
// against a simulated host, so that the path a real run takes is itself tested. It is
// skipped when a real host is configured.
func TestHostContractEnvPlumbing(t *testing.T) {
	if os.Getenv(envHostURL) != "" {
		t.Skipf("%s is set: TestHostContract runs against the real host", envHostURL)
	}
	up, err := upstreamsim.Start(upstreamsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.Close)
	const key = "sk-contract-env-0123456789abcdef"
	up.AddKey(key, upstreamsim.ModeOK)
	sim, err := hostsim.Start(hostsim.Options{Profile: hostsim.Profile179, AdminAPIKey: "admin-" + strings.Repeat("e", 64)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	t.Setenv(envHostURL, sim.URL()+"/")
	t.Setenv(envHostPublicURL, "")
	t.Setenv(envAdminKey, "admin-"+strings.Repeat("e", 64))
	t.Setenv(envUpstreamURL, " "+up.BaseURL(catalog.OpenAICompatible)+"/chat/completions ")
	t.Setenv(envUpstreamKey, key)
	t.Setenv(envUpstreamModel, "")
	t.Setenv(envProvider, "")
	tg := realTarget(t)
	if tg == nil || tg.name != "real" || !tg.real {
		t.Fatalf("realTarget: %+v", tg)
	}
	if tg.providerID != catalog.OpenAICompatible || tg.upstreamBase != up.BaseURL(catalog.OpenAICompatible) {
		t.Errorf("realTarget: provider %q base %q", tg.providerID, tg.upstreamBase)
	}
	tg.retryFor, tg.pause = 5*time.Second, 20*time.Millisecond
	runContract(t, tg)
}
