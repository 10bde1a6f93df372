package host

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// User is a host user.
type User struct {
	ID            int64   `json:"id"`
	Email         string  `json:"email"`
	Username      string  `json:"username"`
	Role          string  `json:"role"`
	Status        string  `json:"status"`
	Balance       float64 `json:"balance"`
	AllowedGroups []int64 `json:"allowed_groups"`
}

// CreateUserRequest is the body of POST /api/v1/admin/users. Password (≥ 6 chars) is needed
// later to log in as the user and create keys: store it.
type CreateUserRequest struct {
	Email       string
	Password    string
	Username    string
	Notes       string
	Concurrency int
}

type createUserWire struct {
	Email       string `json:"email"`
	Password    string `json:"password"`
	Username    string `json:"username,omitempty"`
	Notes       string `json:"notes,omitempty"`
	Concurrency int    `json:"concurrency,omitempty"`
}

// CreateUser creates an end user (409 EMAIL_EXISTS when the e-mail is taken; not idempotent).
func (c *Client) CreateUser(ctx context.Context, req CreateUserRequest) (*User, error) {
	r := adminRequest(http.MethodPost, "/api/v1/admin/users", createUserWire(req))
	r.secrets = []string{req.Password}
	var u User
	if err := c.call(ctx, r, &u); err != nil {
		return nil, fmt.Errorf("create user: %w", err)
	}
	return &u, nil
}

// GetUser reads one user; 404 USER_NOT_FOUND when unknown.
func (c *Client) GetUser(ctx context.Context, id int64) (*User, error) {
	var u User
	if err := c.call(ctx, adminRequest(http.MethodGet, idPath("/api/v1/admin/users/%d", id), nil), &u); err != nil {
		return nil, fmt.Errorf("get user: %w", err)
	}
	return &u, nil
}

// FindUserByEmail returns the user with exactly this e-mail (case-insensitive), or
// (nil, nil) when there is none.
func (c *Client) FindUserByEmail(ctx context.Context, email string) (*User, error) {
	r := adminRequest(http.MethodGet, "/api/v1/admin/users", nil)
	r.query = url.Values{"search": {email}}
	us, err := listAll[User](ctx, c, r)
	if err != nil {
		return nil, fmt.Errorf("find user: %w", err)
	}
	for i := range us {
		if strings.EqualFold(us[i].Email, email) {
			return &us[i], nil
		}
	}
	return nil, nil
}

// DeleteUser deletes a user; its keys stop working at once. Admin users cannot be deleted
// (0.1.179 answers 500).
func (c *Client) DeleteUser(ctx context.Context, id int64) error {
	if err := c.call(ctx, adminRequest(http.MethodDelete, idPath("/api/v1/admin/users/%d", id), nil), nil); err != nil {
		return fmt.Errorf("delete user: %w", err)
	}
	return nil
}

// AddBalance adds amount (> 0) to the user's balance. With the same idempotencyKey a repeat
// is replayed by the host and the balance is not added twice.
func (c *Client) AddBalance(ctx context.Context, userID int64, amount float64, notes, idempotencyKey string) (*User, error) {
	body := struct {
		Balance   float64 `json:"balance"`
		Operation string  `json:"operation"`
		Notes     string  `json:"notes,omitempty"`
	}{amount, "add", notes}
	r := adminRequest(http.MethodPost, idPath("/api/v1/admin/users/%d/balance", userID), body)
	r.idemKey = idempotencyKey
	var u User
	if err := c.call(ctx, r, &u); err != nil {
		return nil, fmt.Errorf("add balance: %w", err)
	}
	return &u, nil
}
