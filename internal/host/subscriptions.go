package host

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// Subscription is a user's subscription to a subscription-type group.
type Subscription struct {
	ID        int64     `json:"id"`
	UserID    int64     `json:"user_id"`
	GroupID   int64     `json:"group_id"`
	Status    string    `json:"status"`
	ExpiresAt time.Time `json:"expires_at"`
}

// AssignSubscriptionRequest is the body of POST /api/v1/admin/subscriptions/assign.
type AssignSubscriptionRequest struct {
	UserID       int64
	GroupID      int64
	ValidityDays int // 1..36500; ≤ 0 means 30 on the host
	Notes        string
}

type assignSubscriptionWire struct {
	UserID       int64  `json:"user_id"`
	GroupID      int64  `json:"group_id"`
	ValidityDays int    `json:"validity_days,omitempty"`
	Notes        string `json:"notes,omitempty"`
}

// AssignSubscription assigns a subscription. An identical repeat returns the same row;
// different validity_days/notes give 409 SUBSCRIPTION_ASSIGN_CONFLICT (metadata
// conflict_reason); a standard group gives 400 GROUP_NOT_SUBSCRIPTION_TYPE. Assign before
// creating the user's key: key binding checks for an active subscription.
func (c *Client) AssignSubscription(ctx context.Context, req AssignSubscriptionRequest) (*Subscription, error) {
	var s Subscription
	r := adminRequest(http.MethodPost, "/api/v1/admin/subscriptions/assign", assignSubscriptionWire(req))
	if err := c.call(ctx, r, &s); err != nil {
		return nil, fmt.Errorf("assign subscription: %w", err)
	}
	return &s, nil
}

// ListUserSubscriptions lists a user's subscriptions (GET /api/v1/admin/users/:id/subscriptions, a bare array).
func (c *Client) ListUserSubscriptions(ctx context.Context, userID int64) ([]Subscription, error) {
	var ss []Subscription
	if err := c.call(ctx, adminRequest(http.MethodGet, idPath("/api/v1/admin/users/%d/subscriptions", userID), nil), &ss); err != nil {
		return nil, fmt.Errorf("list user subscriptions: %w", err)
	}
	return ss, nil
}

// RevokeSubscription revokes (soft-deletes) a subscription; 404 SUBSCRIPTION_NOT_FOUND when
// unknown. Keys on the group get 403 at once.
func (c *Client) RevokeSubscription(ctx context.Context, id int64) error {
	if err := c.call(ctx, adminRequest(http.MethodDelete, idPath("/api/v1/admin/subscriptions/%d", id), nil), nil); err != nil {
		return fmt.Errorf("revoke subscription: %w", err)
	}
	return nil
}
