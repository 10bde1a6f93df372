package host

import (
	"context"
	"fmt"
	"net/http"
)

// APIKey is an end-user key. Key holds the full secret: never log or store it in clear.
type APIKey struct {
	ID      int64  `json:"id"`
	UserID  int64  `json:"user_id"`
	GroupID int64  `json:"group_id"`
	Key     string `json:"key"`
	Name    string `json:"name"`
	Status  string `json:"status"`
}

// CreateKeyRequest is the body of POST /api/v1/keys. CustomKey (≥ 16 chars of
// [A-Za-z0-9_-]) makes the key value deterministic; empty lets the host generate one.
type CreateKeyRequest struct {
	Name      string
	GroupID   int64
	CustomKey string
}

type createKeyWire struct {
	Name      string `json:"name"`
	GroupID   int64  `json:"group_id,omitempty"`
	CustomKey string `json:"custom_key,omitempty"`
}

// userRequest is a call authenticated with an end user's JWT. The admin key is rejected on
// these routes (401 UNAUTHORIZED), so it is never sent.
func userRequest(method, path, token string, body any) request {
	return request{target: "host", method: method, path: path, body: body, auth: authUser, token: token}
}

// CreateKey creates a key for the user owning userToken. Errors: 403 GROUP_NOT_ALLOWED
// (subscription group without active subscription, exclusive group), 404 GROUP_NOT_FOUND,
// 409 API_KEY_EXISTS, 400 API_KEY_TOO_SHORT. idempotencyKey is sent when non-empty.
func (c *Client) CreateKey(ctx context.Context, userToken string, req CreateKeyRequest, idempotencyKey string) (*APIKey, error) {
	r := userRequest(http.MethodPost, "/api/v1/keys", userToken, createKeyWire(req))
	r.idemKey = idempotencyKey
	r.secrets = []string{req.CustomKey}
	var k APIKey
	if err := c.call(ctx, r, &k); err != nil {
		return nil, fmt.Errorf("create key: %w", err)
	}
	return &k, nil
}

// ListKeys lists the keys of the user owning userToken, following every page.
func (c *Client) ListKeys(ctx context.Context, userToken string) ([]APIKey, error) {
	ks, err := listAll[APIKey](ctx, c, userRequest(http.MethodGet, "/api/v1/keys", userToken, nil))
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return ks, nil
}

// DeleteKey deletes one of the user's keys; 404 API_KEY_NOT_FOUND when unknown.
func (c *Client) DeleteKey(ctx context.Context, userToken string, id int64) error {
	if err := c.call(ctx, userRequest(http.MethodDelete, idPath("/api/v1/keys/%d", id), userToken, nil), nil); err != nil {
		return fmt.Errorf("delete key: %w", err)
	}
	return nil
}

// ListUserKeys lists a user's keys with admin auth (GET /api/v1/admin/users/:id/api-keys),
// following every page. The answer includes the full key values.
func (c *Client) ListUserKeys(ctx context.Context, userID int64) ([]APIKey, error) {
	ks, err := listAll[APIKey](ctx, c, adminRequest(http.MethodGet, idPath("/api/v1/admin/users/%d/api-keys", userID), nil))
	if err != nil {
		return nil, fmt.Errorf("list user keys: %w", err)
	}
	return ks, nil
}
