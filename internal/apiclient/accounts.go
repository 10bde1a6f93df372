package apiclient

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
)

// The routes of the work after the import: accounts with their latest verdict, history,
// re-verification runs, undo.

// ListAccounts reads one page of a host's accounts with their latest verdict
// ({"items","total","page","page_size"}); query may hold status, failing, page and
// page_size.
func (c *Client) ListAccounts(ctx context.Context, hostID string, query url.Values, out any) (json.RawMessage, error) {
	return c.Do(ctx, http.MethodGet, "/api/v1/hosts/"+url.PathEscape(hostID)+"/accounts", query, nil, out)
}

// AccountChecks reads an account's latest verdict and its newest checks
// ({"account","items"}); itemID names the account by its item.
func (c *Client) AccountChecks(ctx context.Context, itemID string, limit int, out any) (json.RawMessage, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return c.Do(ctx, http.MethodGet, "/api/v1/accounts/"+url.PathEscape(itemID)+"/checks", q, nil, out)
}

// VerifyHost starts a re-verification of a host now, its checks spread over spreadS
// seconds, and returns the run.
func (c *Client) VerifyHost(ctx context.Context, hostID string, spreadS int, out any) (json.RawMessage, error) {
	return c.Do(ctx, http.MethodPost, "/api/v1/hosts/"+url.PathEscape(hostID)+"/verify", nil, map[string]int{"spread_s": spreadS}, out)
}

// GetVerifyRun reads one re-verification run.
func (c *Client) GetVerifyRun(ctx context.Context, id string, out any) (json.RawMessage, error) {
	return c.Do(ctx, http.MethodGet, "/api/v1/verify-runs/"+url.PathEscape(id), nil, nil, out)
}

// UndoCheck asks for the undo of the host change a check made and returns the check.
func (c *Client) UndoCheck(ctx context.Context, checkID string, out any) (json.RawMessage, error) {
	return c.Do(ctx, http.MethodPost, "/api/v1/account-checks/"+url.PathEscape(checkID)+"/undo", nil, struct{}{}, out)
}
