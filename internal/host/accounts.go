package host

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
)

// Account is a host account: one upstream credential. Credentials never contain the
// upstream api_key on output (129/179 omit it; the fork returns a placeholder).
type Account struct {
	ID           int64          `json:"id"`
	Name         string         `json:"name"`
	Notes        string         `json:"notes"`
	Platform     string         `json:"platform"`
	Type         string         `json:"type"`
	Status       string         `json:"status"`
	ErrorMessage string         `json:"error_message"`
	Schedulable  bool           `json:"schedulable"`
	Credentials  map[string]any `json:"credentials"`
	Extra        map[string]any `json:"extra"`
	GroupIDs     []int64        `json:"group_ids"` // only on GET, not in the create answer
	Concurrency  int            `json:"concurrency"`
	Priority     int            `json:"priority"`
	// GatewayProtocol is set on fork protocol_gateway accounts.
	GatewayProtocol string `json:"gateway_protocol,omitempty"`
	// RateLimitResetAt is the end of a 429 cooldown (RFC 3339), empty when none.
	RateLimitResetAt string `json:"rate_limit_reset_at,omitempty"`
	// TempUnschedulableUntil/Reason: a temporary pause set by the host. On 0.1.179 a native
	// deepseek account answering 402 was parked this way ("cn_balance_low: ...") instead of
	// going to status "error" (fixture accounts.get.deepseek-after-gateway-402).
	TempUnschedulableUntil  string `json:"temp_unschedulable_until,omitempty"`
	TempUnschedulableReason string `json:"temp_unschedulable_reason,omitempty"`
	// LifecycleState is a fork-only field; its presence marks a fork.
	LifecycleState string `json:"lifecycle_state,omitempty"`
}

// ModelMapping returns credentials.model_mapping as strings (what the host will really
// send upstream; the fork may have rewritten deprecated targets).
func (a *Account) ModelMapping() map[string]string {
	m, _ := a.Credentials["model_mapping"].(map[string]any)
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

// CreateAccountRequest is the body of POST /api/v1/admin/accounts.
type CreateAccountRequest struct {
	Name        string
	Notes       string
	Platform    string
	Type        string
	Credentials map[string]any
	Extra       map[string]any
	Concurrency int
	Priority    int
	// LoadFactor is the account's scheduling weight (nil = the host's default, its
	// concurrency).
	LoadFactor *int
	GroupIDs   []int64
	// GatewayProtocol is required by the fork for platform protocol_gateway ("openai").
	GatewayProtocol string
}

type createAccountWire struct {
	Name            string         `json:"name"`
	Notes           string         `json:"notes,omitempty"`
	Platform        string         `json:"platform"`
	GatewayProtocol string         `json:"gateway_protocol,omitempty"`
	Type            string         `json:"type"`
	Credentials     map[string]any `json:"credentials"`
	Extra           map[string]any `json:"extra,omitempty"`
	Concurrency     int            `json:"concurrency"`
	Priority        int            `json:"priority"`
	LoadFactor      *int           `json:"load_factor,omitempty"`
	GroupIDs        []int64        `json:"group_ids"`
}

// wire is the JSON body of the request.
func (req CreateAccountRequest) wire() createAccountWire {
	gids := req.GroupIDs
	if gids == nil {
		gids = []int64{} // explicit: an absent list binds <platform>-default on 129/179
	}
	return createAccountWire{Name: req.Name, Notes: req.Notes, Platform: req.Platform,
		GatewayProtocol: req.GatewayProtocol, Type: req.Type, Credentials: req.Credentials,
		Extra: req.Extra, Concurrency: req.Concurrency, Priority: req.Priority, LoadFactor: req.LoadFactor, GroupIDs: gids}
}

// credentialSecrets returns the upstream key inside a credentials map, for redaction.
func credentialSecrets(creds map[string]any) []string {
	var out []string
	for _, k := range []string{"api_key", "access_token", "refresh_token", "secret"} {
		if s, ok := creds[k].(string); ok && s != "" && s != redactedPlaceholder {
			out = append(out, s)
		}
	}
	return out
}

// CreateAccount creates an account. idempotencyKey (when non-empty) is sent as
// Idempotency-Key: a repeat with the same body replays the stored answer, a different body
// gets 409 IDEMPOTENCY_KEY_CONFLICT. On 129/179 an unknown group id gives 500 and still
// creates the account without groups: validate group ids first.
func (c *Client) CreateAccount(ctx context.Context, req CreateAccountRequest, idempotencyKey string) (*Account, error) {
	r := adminRequest(http.MethodPost, "/api/v1/admin/accounts", req.wire())
	r.idemKey = idempotencyKey
	r.secrets = credentialSecrets(req.Credentials)
	var a Account
	if err := c.call(ctx, r, &a); err != nil {
		return nil, fmt.Errorf("create account: %w", err)
	}
	return &a, nil
}

// GetAccount reads one account (with group_ids); 404 ACCOUNT_NOT_FOUND when unknown.
func (c *Client) GetAccount(ctx context.Context, id int64) (*Account, error) {
	var a Account
	if err := c.call(ctx, adminRequest(http.MethodGet, idPath("/api/v1/admin/accounts/%d", id), nil), &a); err != nil {
		return nil, fmt.Errorf("get account: %w", err)
	}
	return &a, nil
}

// ListAccounts lists accounts matching search (empty = all), following every page. Pages
// are conditional requests: the host answers 304 for a page that did not change since this
// client last read it, and the earlier answer is used.
func (c *Client) ListAccounts(ctx context.Context, search string) ([]Account, error) {
	r := adminRequest(http.MethodGet, "/api/v1/admin/accounts", nil)
	r.conditional = true
	if search != "" {
		r.query = url.Values{"search": {search}}
	}
	as, err := listAll[Account](ctx, c, r)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	return as, nil
}

// UpdateAccountRequest is a partial PUT /api/v1/admin/accounts/:id; only non-nil fields are
// sent. GroupIDs replaces every binding (an empty slice unbinds all); Credentials replaces
// the whole map (send api_key, base_url and model_mapping together).
type UpdateAccountRequest struct {
	GroupIDs    *[]int64
	Status      *string
	Credentials map[string]any
	Extra       map[string]any
	Notes       *string
}

type updateAccountWire struct {
	GroupIDs    *[]int64       `json:"group_ids,omitempty"`
	Status      *string        `json:"status,omitempty"`
	Credentials map[string]any `json:"credentials,omitempty"`
	Extra       map[string]any `json:"extra,omitempty"`
	Notes       *string        `json:"notes,omitempty"`
}

// UpdateAccount applies a partial update. The host does not support Idempotency-Key here.
func (c *Client) UpdateAccount(ctx context.Context, id int64, req UpdateAccountRequest) (*Account, error) {
	body := updateAccountWire{GroupIDs: req.GroupIDs, Status: req.Status, Credentials: req.Credentials,
		Extra: req.Extra, Notes: req.Notes}
	if req.GroupIDs != nil && *req.GroupIDs == nil {
		empty := []int64{} // "unbind all" must be [] on the wire, not null
		body.GroupIDs = &empty
	}
	r := adminRequest(http.MethodPut, idPath("/api/v1/admin/accounts/%d", id), body)
	r.secrets = credentialSecrets(req.Credentials)
	var a Account
	if err := c.call(ctx, r, &a); err != nil {
		return nil, fmt.Errorf("update account: %w", err)
	}
	return &a, nil
}

// DeleteAccount deletes an account. The host answers 200 even for unknown ids.
func (c *Client) DeleteAccount(ctx context.Context, id int64) error {
	if err := c.call(ctx, adminRequest(http.MethodDelete, idPath("/api/v1/admin/accounts/%d", id), nil), nil); err != nil {
		return fmt.Errorf("delete account: %w", err)
	}
	return nil
}

// AccountModels lists the public model ids an account offers (its mapping keys).
func (c *Client) AccountModels(ctx context.Context, id int64) ([]string, error) {
	var items []struct {
		ID string `json:"id"`
	}
	if err := c.call(ctx, adminRequest(http.MethodGet, idPath("/api/v1/admin/accounts/%d/models", id), nil), &items); err != nil {
		return nil, fmt.Errorf("account models: %w", err)
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		out = append(out, it.ID)
	}
	return out, nil
}

// ClearAccountError clears status "error". On 0.1.179 schedulable stays false afterwards:
// follow with SetSchedulable(true) (Profile.ClearErrorNeedsSchedulable).
func (c *Client) ClearAccountError(ctx context.Context, id int64) (*Account, error) {
	var a Account
	if err := c.call(ctx, adminRequest(http.MethodPost, idPath("/api/v1/admin/accounts/%d/clear-error", id), nil), &a); err != nil {
		return nil, fmt.Errorf("clear account error: %w", err)
	}
	return &a, nil
}

// SetSchedulable switches the admin pause flag of an account.
func (c *Client) SetSchedulable(ctx context.Context, id int64, schedulable bool) (*Account, error) {
	var a Account
	body := map[string]bool{"schedulable": schedulable}
	if err := c.call(ctx, adminRequest(http.MethodPost, idPath("/api/v1/admin/accounts/%d/schedulable", id), body), &a); err != nil {
		return nil, fmt.Errorf("set schedulable: %w", err)
	}
	return &a, nil
}

// ClearRateLimit ends a 429 cooldown early (POST /api/v1/admin/accounts/:id/clear-rate-limit).
// Read in the host source, not exercised against a running host.
func (c *Client) ClearRateLimit(ctx context.Context, id int64) error {
	if err := c.call(ctx, adminRequest(http.MethodPost, idPath("/api/v1/admin/accounts/%d/clear-rate-limit", id), nil), nil); err != nil {
		return fmt.Errorf("clear rate limit: %w", err)
	}
	return nil
}

// ClearTempUnschedulable ends a temporary pause (DELETE
// /api/v1/admin/accounts/:id/temp-unschedulable). Read in the host source, not exercised.
func (c *Client) ClearTempUnschedulable(ctx context.Context, id int64) error {
	if err := c.call(ctx, adminRequest(http.MethodDelete, idPath("/api/v1/admin/accounts/%d/temp-unschedulable", id), nil), nil); err != nil {
		return fmt.Errorf("clear temp unschedulable: %w", err)
	}
	return nil
}

// ForkMarkers reports whether the account shows fork-only traits (lifecycle_state, the
// redacted api_key placeholder), for Features.ForkMarkers.
func (a *Account) ForkMarkers() bool {
	return a.LifecycleState != "" || a.Credentials["api_key"] == redactedPlaceholder
}
