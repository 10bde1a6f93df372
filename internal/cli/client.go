package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls the cn-relay-manager REST API.
type Client struct {
	Base  string // e.g. http://127.0.0.1:8080
	Token string
	HTTP  *http.Client
}

// APIError is an error answered by the API ({"error":{"code","message","field"}}).
type APIError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (HTTP %d)", e.Message, e.Status)
	if e.Code != "" {
		fmt.Fprintf(&b, " [%s]", e.Code)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, " field %s", e.Field)
	}
	switch e.Status {
	case http.StatusUnauthorized:
		b.WriteString("\nhint: pass the API token with --token or CRM_API_TOKEN")
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		if e.Code == "" || e.Code == "http_error" {
			b.WriteString("\nhint: this server does not offer this endpoint (an older version?)")
		}
	}
	return b.String()
}

// NewClient returns a client for base with token.
func NewClient(base, token string) *Client {
	return &Client{Base: strings.TrimRight(base, "/"), Token: token, HTTP: &http.Client{Timeout: 60 * time.Second}}
}

// Do sends method path?query with in as the JSON body and returns the raw JSON answer;
// when out is non-nil the answer is decoded into it.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, in, out any) (json.RawMessage, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	u := c.Base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("bad API URL %q: %w", c.Base, err)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("cannot reach the API at %s: %w\nhint: set --api or CRM_API_URL", c.Base, unwrapURLError(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return nil, decodeAPIError(resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("%s %s: unexpected answer: %w", method, path, err)
		}
	}
	return raw, nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func decodeAPIError(status int, raw []byte) error {
	var env struct {
		Error *APIError `json:"error"`
	}
	if json.Unmarshal(raw, &env) == nil && env.Error != nil && env.Error.Message != "" {
		env.Error.Status = status
		return env.Error
	}
	msg := strings.TrimSpace(string(raw))
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &APIError{Status: status, Message: msg}
}

// API views: only the fields the CLI shows (JSON names from internal/store).

type hostView struct {
	ID             string          `json:"id"`
	Name           string          `json:"name"`
	AdminURL       string          `json:"admin_url"`
	PublicURL      string          `json:"public_url"`
	AuthKind       string          `json:"auth_kind"`
	AdminKeyMasked string          `json:"admin_key_masked"`
	AdminEmail     string          `json:"admin_email"`
	Version        string          `json:"version"`
	Profile        string          `json:"profile"`
	Status         string          `json:"status"`
	StatusMessage  string          `json:"status_message"`
	Warnings       []string        `json:"warnings"`
	Flags          map[string]bool `json:"flags"`
	ProbedAt       *time.Time      `json:"probed_at"`
	CreatedAt      time.Time       `json:"created_at"`
}

type batchOptions struct {
	WindowDeadlineS float64   `json:"window_deadline_s"`
	WindowScheduleS []float64 `json:"window_schedule_s"`
}

type batchView struct {
	ID         string         `json:"id"`
	HostID     string         `json:"host_id"`
	Name       string         `json:"name"`
	Mode       string         `json:"mode"`
	DryRun     bool           `json:"dry_run"`
	Force      bool           `json:"force"`
	Options    batchOptions   `json:"options"`
	Status     string         `json:"status"`
	ItemCount  int            `json:"item_count"`
	Counts     map[string]int `json:"counts"`
	CreatedAt  time.Time      `json:"created_at"`
	FinishedAt *time.Time     `json:"finished_at"`
	LastAction actionView     `json:"last_action"`
	Groups     []groupView    `json:"groups"`
}

// groupView is one host group of a batch: created, reused or the operator's existing one.
type groupView struct {
	Name    string `json:"name"`
	Action  string `json:"action"`
	Items   int    `json:"items"`
	Ready   int    `json:"ready"`
	Planned bool   `json:"planned"`
}

// groupsText is "deepseek: create, 3 accounts (3 ready); kimi: reuse, …" for one batch.
func groupsText(gs []groupView) string {
	var parts []string
	for _, g := range gs {
		verb := map[string]string{"create": "created", "reuse": "reused", "existing": "existing group"}[g.Action]
		if g.Planned {
			verb = map[string]string{"create": "would be created", "reuse": "would be reused", "existing": "existing group"}[g.Action]
		}
		if verb == "" {
			verb = g.Action
		}
		parts = append(parts, fmt.Sprintf("%s (%s, %d account(s), %d ready)", g.Name, verb, g.Items, g.Ready))
	}
	return strings.Join(parts, "; ")
}

// actionView is the outcome of the batch's last rollback (or other batch-level operation).
type actionView struct {
	Kind    string `json:"kind"`
	Status  string `json:"status"`
	Message string `json:"message"`
	Objects []struct {
		ResourceType   string `json:"resource_type"`
		HostResourceID string `json:"host_resource_id"`
		Name           string `json:"name"`
		Result         string `json:"result"`
		Detail         string `json:"detail"`
	} `json:"objects"`
	Finished *time.Time `json:"finished_at"`
}

type reconcileRunView struct {
	ID             string `json:"id"`
	Status         string `json:"status"`
	Summary        string `json:"summary"`
	ObjectsChecked int    `json:"objects_checked"`
	ObjectsTotal   int    `json:"objects_total"`
	Findings       []struct {
		Kind           string `json:"kind"`
		ResourceType   string `json:"resource_type"`
		HostResourceID string `json:"host_resource_id"`
		Name           string `json:"name"`
		Detail         string `json:"detail"`
	} `json:"findings"`
	FinishedAt *time.Time `json:"finished_at"`
}

type correction struct {
	Requested string `json:"requested"`
	Resolved  string `json:"resolved"`
	Method    string `json:"method"`
	Note      string `json:"note"`
}

type itemView struct {
	ID              string         `json:"id"`
	BatchID         string         `json:"batch_id"`
	Index           int            `json:"index"`
	Name            string         `json:"name"`
	BaseURL         string         `json:"base_url"`
	NormalizedURL   string         `json:"normalized_url"`
	AnthropicBase   string         `json:"anthropic_base_url"`
	ProviderHint    string         `json:"provider_hint"`
	Provider        string         `json:"provider"`
	DetectedBy      string         `json:"detected_by"`
	Suggested       string         `json:"suggested_provider"`
	KeyMasked       string         `json:"key_masked"`
	RequestedModels []string       `json:"requested_models"`
	Corrections     []correction   `json:"corrections"`
	Models          []string       `json:"models"`
	SmokeModel      string         `json:"smoke_model"`
	Capability      map[string]any `json:"capability"`
	Status          string         `json:"status"`
	Step            string         `json:"step"`
	Seq             int            `json:"seq"`
	NextRunAt       *time.Time     `json:"next_run_at"`
	WindowDeadline  *time.Time     `json:"window_deadline"`
	FailureClass    string         `json:"failure_class"`
	FailureMessage  string         `json:"failure_message"`
	Warnings        []string       `json:"warnings"`
	AccountStatus   string         `json:"account_status"`
	AccessStatus    string         `json:"access_status"`
	SmokePreview    string         `json:"smoke_preview"`
	DuplicateOf     string         `json:"duplicate_of"`
	Attempts        int            `json:"attempts"`
	CreatedAt       time.Time      `json:"created_at"`
	FinishedAt      *time.Time     `json:"finished_at"`
}

type exchange struct {
	Target    string    `json:"target"`
	Method    string    `json:"method"`
	Path      string    `json:"path"`
	Status    int       `json:"status"`
	LatencyMS int64     `json:"latency_ms"`
	Preview   string    `json:"preview"`
	Error     string    `json:"error"`
	At        time.Time `json:"at"`
}

type attemptView struct {
	Step         string     `json:"step"`
	Seq          int        `json:"seq"`
	Number       int        `json:"number"`
	Outcome      string     `json:"outcome"`
	Message      string     `json:"message"`
	FailureClass string     `json:"failure_class"`
	Evidence     []exchange `json:"evidence"`
	StartedAt    time.Time  `json:"started_at"`
	FinishedAt   time.Time  `json:"finished_at"`
}

func (c *Client) getBatch(ctx context.Context, id string) (batchView, json.RawMessage, error) {
	var b batchView
	raw, err := c.Do(ctx, http.MethodGet, "/api/v1/batches/"+url.PathEscape(id), nil, nil, &b)
	return b, raw, err
}

func (c *Client) listHosts(ctx context.Context) ([]hostView, json.RawMessage, error) {
	var p struct {
		Items []hostView `json:"items"`
	}
	raw, err := c.Do(ctx, http.MethodGet, "/api/v1/hosts", nil, nil, &p)
	return p.Items, raw, err
}

// resolveHost turns a host ID or name into an ID.
func (c *Client) resolveHost(ctx context.Context, ref string) (string, error) {
	hosts, _, err := c.listHosts(ctx)
	if err != nil {
		return "", err
	}
	for _, h := range hosts {
		if h.ID == ref {
			return h.ID, nil
		}
	}
	for _, h := range hosts {
		if h.Name == ref {
			return h.ID, nil
		}
	}
	for _, h := range hosts {
		if strings.EqualFold(h.Name, ref) {
			return h.ID, nil
		}
	}
	return "", fmt.Errorf("no registered host has the id or name %q (see: crmctl hosts list)", ref)
}
