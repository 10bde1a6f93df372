// Package apiclient is the one client of cn-relay-manager's own REST API: crmctl, the demo
// and the end-to-end tests call the API through it, and wait for what they started with
// its one poll helper (Poll).
//
// It is written by hand, not generated from internal/api/openapi.json (e.g. with
// oapi-codegen): the API answers with the store's own JSON documents, which its callers
// already decode into their own views (crmctl shows a subset, the tests read the store
// types), so a generated copy of every schema would be a third definition of the same
// models to keep in step, plus a code generator in the build. What a generator would
// guarantee — that the client's calls match the document — is checked instead by the
// API's contract test, which validates every exchange against openapi.json.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/batch/request"
)

// Client calls the REST API at Base with a bearer Token.
type Client struct {
	Base  string // e.g. http://127.0.0.1:8080
	Token string
	HTTP  *http.Client
}

// New returns a client for base with token and a 60-second request timeout.
func New(base, token string) *Client {
	return &Client{Base: strings.TrimRight(base, "/"), Token: token, HTTP: &http.Client{Timeout: 60 * time.Second}}
}

// Error is an error answered by the API ({"error":{"code","message","field"}}), or any
// other answer of status 300 or more (Message is then the body's start).
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (HTTP %d)", e.Message, e.Status)
	if e.Code != "" {
		fmt.Fprintf(&b, " [%s]", e.Code)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, " field %s", e.Field)
	}
	return b.String()
}

// UnreachableError is a request that got no answer (connection refused, DNS, timeout).
type UnreachableError struct {
	Base string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the API at %s: %v", e.Base, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Call sends method path?query with in as the JSON body (nil: none; a json.RawMessage is
// sent as is) and returns the status and the raw answer. An answer of 300 or more is an
// *Error; when out is non-nil a success is decoded into it.
func (c *Client) Call(ctx context.Context, method, path string, query url.Values, in, out any) (int, json.RawMessage, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, nil, err
		}
		body = bytes.NewReader(b)
	}
	u := c.Base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return 0, nil, fmt.Errorf("bad API URL %q: %w", c.Base, err)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil, ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, nil, &UnreachableError{Base: c.Base, Err: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, raw, decodeError(resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, raw, fmt.Errorf("%s %s: unexpected answer: %w", method, path, err)
		}
	}
	return resp.StatusCode, raw, nil
}

// Do is Call without the status.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, in, out any) (json.RawMessage, error) {
	_, raw, err := c.Call(ctx, method, path, query, in, out)
	return raw, err
}

func decodeError(status int, raw []byte) error {
	var env struct {
		Error *Error `json:"error"`
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
	return &Error{Status: status, Message: msg}
}

// IsStatus reports whether err is an answer of the API with the given status.
func IsStatus(err error, status int) bool {
	var ae *Error
	return errors.As(err, &ae) && ae.Status == status
}

func batchPath(id string, rest ...string) string {
	p := "/api/v1/batches/" + url.PathEscape(id)
	for _, r := range rest {
		p += "/" + url.PathEscape(r)
	}
	return p
}

// The endpoints. Each decodes the answer into out (the caller's view of the document;
// nil: not decoded) and returns the raw answer.

// Ready asks /readyz; nil means the API and its queue are ready.
func (c *Client) Ready(ctx context.Context) error {
	_, err := c.Do(ctx, http.MethodGet, "/readyz", nil, nil, nil)
	return err
}

// HostRequest registers a host (POST /api/v1/hosts).
type HostRequest struct {
	Name          string `json:"name"`
	AdminURL      string `json:"admin_url"`
	PublicURL     string `json:"public_url,omitempty"`
	AdminAPIKey   string `json:"admin_api_key,omitempty"`
	AdminEmail    string `json:"admin_email,omitempty"`
	AdminPassword string `json:"admin_password,omitempty"`
}

// RegisterHost registers a host; the API probes it first.
func (c *Client) RegisterHost(ctx context.Context, req HostRequest, out any) (json.RawMessage, error) {
	return c.Do(ctx, http.MethodPost, "/api/v1/hosts", nil, req, out)
}

// ListHosts lists the registered hosts ({"items":[...],"total":n}).
func (c *Client) ListHosts(ctx context.Context, out any) (json.RawMessage, error) {
	return c.Do(ctx, http.MethodGet, "/api/v1/hosts", nil, nil, out)
}

// ProbeHost probes a registered host again and returns it.
func (c *Client) ProbeHost(ctx context.Context, id string, out any) (json.RawMessage, error) {
	return c.Do(ctx, http.MethodPost, "/api/v1/hosts/"+url.PathEscape(id)+"/probe", nil, nil, out)
}

// HostChange changes a host's settings (PATCH /api/v1/hosts/{id}) or names the settings
// to test (POST /api/v1/hosts/{id}/test); empty fields keep the stored value.
type HostChange struct {
	Name          string `json:"name,omitempty"`
	AdminURL      string `json:"admin_url,omitempty"`
	PublicURL     string `json:"public_url,omitempty"`
	AdminAPIKey   string `json:"admin_api_key,omitempty"`
	AdminEmail    string `json:"admin_email,omitempty"`
	AdminPassword string `json:"admin_password,omitempty"`
}

// UpdateHost changes a host's settings; new URLs or credentials are checked against the
// host before the API saves them.
func (c *Client) UpdateHost(ctx context.Context, id string, ch HostChange, out any) (json.RawMessage, error) {
	return c.Do(ctx, http.MethodPatch, "/api/v1/hosts/"+url.PathEscape(id), nil, ch, out)
}

// TestHost tests the connection to a host with its stored settings (ch empty) or with ch
// applied to them; nothing is saved.
func (c *Client) TestHost(ctx context.Context, id string, ch HostChange, out any) (json.RawMessage, error) {
	var in any
	if ch != (HostChange{}) {
		in = ch
	}
	return c.Do(ctx, http.MethodPost, "/api/v1/hosts/"+url.PathEscape(id)+"/test", nil, in, out)
}

// DeleteHost deletes a host; forget also forgets the ledger's objects on it (they stay on
// the host, unmanaged).
func (c *Client) DeleteHost(ctx context.Context, id string, forget bool, out any) (json.RawMessage, error) {
	var q url.Values
	if forget {
		q = url.Values{"forget": {"true"}}
	}
	return c.Do(ctx, http.MethodDelete, "/api/v1/hosts/"+url.PathEscape(id), q, nil, out)
}

// ResolveHost turns a host ID or name (exact, then case-insensitive) into an ID.
func (c *Client) ResolveHost(ctx context.Context, ref string) (string, error) {
	var p struct {
		Items []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"items"`
	}
	if _, err := c.ListHosts(ctx, &p); err != nil {
		return "", err
	}
	for _, match := range []func(id, name string) bool{
		func(id, _ string) bool { return id == ref },
		func(_, name string) bool { return name == ref },
		func(_, name string) bool { return strings.EqualFold(name, ref) },
	} {
		for _, h := range p.Items {
			if match(h.ID, h.Name) {
				return h.ID, nil
			}
		}
	}
	return "", fmt.Errorf("no registered host has the id or name %q (see: crmctl hosts list)", ref)
}

// SubmitBatch submits a batch ({"batch","enqueued","items"}).
func (c *Client) SubmitBatch(ctx context.Context, req request.Batch, out any) (json.RawMessage, error) {
	return c.Do(ctx, http.MethodPost, "/api/v1/batches", nil, req, out)
}

// ListBatches lists batches; query may hold host_id, status, page and page_size.
func (c *Client) ListBatches(ctx context.Context, query url.Values, out any) (json.RawMessage, error) {
	return c.Do(ctx, http.MethodGet, "/api/v1/batches", query, nil, out)
}

// GetBatch reads one batch with its counts and groups.
func (c *Client) GetBatch(ctx context.Context, id string, out any) (json.RawMessage, error) {
	return c.Do(ctx, http.MethodGet, batchPath(id), nil, nil, out)
}

// ListItems reads one page of a batch's items ({"items","total","page","page_size"}).
func (c *Client) ListItems(ctx context.Context, batchID string, page, size int, out any) (json.RawMessage, error) {
	q := url.Values{"page": {strconv.Itoa(page)}, "page_size": {strconv.Itoa(size)}}
	return c.Do(ctx, http.MethodGet, batchPath(batchID, "items"), q, nil, out)
}

// AllItems reads every item of a batch, page by page, as the API sent them.
func (c *Client) AllItems(ctx context.Context, batchID string) ([]json.RawMessage, error) {
	var all []json.RawMessage
	for page := 1; ; page++ {
		var p struct {
			Items []json.RawMessage `json:"items"`
			Total int               `json:"total"`
		}
		if _, err := c.ListItems(ctx, batchID, page, 1000, &p); err != nil {
			return nil, err
		}
		all = append(all, p.Items...)
		if len(p.Items) == 0 || len(all) >= p.Total {
			return all, nil
		}
	}
}

// GetItem reads one item with its attempts ({"item","attempts"}).
func (c *Client) GetItem(ctx context.Context, batchID, itemID string, out any) (json.RawMessage, error) {
	return c.Do(ctx, http.MethodGet, batchPath(batchID, "items", itemID), nil, nil, out)
}

// Batch operations (POST /api/v1/batches/{id}/{op}).
const (
	OpRetry     = "retry"
	OpCancel    = "cancel"
	OpRollback  = "rollback"
	OpReconcile = "reconcile"
	OpImport    = "import"
)

// BatchOp asks for one of the batch operations: retry and cancel answer the batch and a
// count, rollback that it is queued, reconcile the queued run, import the new batch.
func (c *Client) BatchOp(ctx context.Context, id, op string, out any) (json.RawMessage, error) {
	return c.Do(ctx, http.MethodPost, batchPath(id, op), nil, struct{}{}, out)
}

// GetReconcileRun reads one reconcile run.
func (c *Client) GetReconcileRun(ctx context.Context, id string, out any) (json.RawMessage, error) {
	return c.Do(ctx, http.MethodGet, "/api/v1/reconcile-runs/"+url.PathEscape(id), nil, nil, out)
}
