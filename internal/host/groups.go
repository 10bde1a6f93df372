package host

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Group is a host group (/api/v1/admin/groups). Only the fields the product uses are kept.
type Group struct {
	ID               int64   `json:"id"`
	Name             string  `json:"name"`
	Description      string  `json:"description"`
	Platform         string  `json:"platform"`
	Status           string  `json:"status"`
	SubscriptionType string  `json:"subscription_type"`
	RateMultiplier   float64 `json:"rate_multiplier"`
	IsExclusive      bool    `json:"is_exclusive"`
	// ModelAllowlist is 0.2.3+'s per-group model gate (nil on older hosts).
	ModelAllowlist *ModelAllowlist `json:"model_allowlist,omitempty"`
}

// ModelAllowlist is a group's model_allowlist: when Enabled, the gateway answers 404 for
// any model the client names that matches no entry (exact ids or trailing-* patterns,
// case-insensitive), before routing to an account.
type ModelAllowlist struct {
	Enabled bool     `json:"enabled"`
	Models  []string `json:"models,omitempty"`
}

// Allows reports whether the group's allowlist lets model through the gateway.
func (g *Group) Allows(model string) bool {
	if g == nil || g.ModelAllowlist == nil || !g.ModelAllowlist.Enabled {
		return true
	}
	m := strings.ToLower(strings.TrimSpace(model))
	for _, p := range g.ModelAllowlist.Models {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == m || strings.HasSuffix(p, "*") && strings.HasPrefix(m, strings.TrimSuffix(p, "*")) {
			return true
		}
	}
	return false
}

// CreateGroupRequest is the body of POST /api/v1/admin/groups. RateMultiplier is always
// sent (1 when zero) because 0.1.129 and 0.1.179 answer 500 without it.
type CreateGroupRequest struct {
	Name             string
	Description      string
	Platform         string
	SubscriptionType string // "standard" (default on the host) or "subscription"
	RateMultiplier   float64
}

type createGroupWire struct {
	Name             string  `json:"name"`
	Description      string  `json:"description,omitempty"`
	Platform         string  `json:"platform,omitempty"`
	RateMultiplier   float64 `json:"rate_multiplier"`
	SubscriptionType string  `json:"subscription_type,omitempty"`
}

// CreateGroup creates a group. The host does not honour Idempotency-Key here: a repeat
// answers 409 GROUP_EXISTS, which callers treat as "find and adopt" (FindGroupByName).
func (c *Client) CreateGroup(ctx context.Context, req CreateGroupRequest) (*Group, error) {
	rm := req.RateMultiplier
	if rm == 0 {
		rm = 1
	}
	body := createGroupWire{Name: req.Name, Description: req.Description, Platform: req.Platform,
		RateMultiplier: rm, SubscriptionType: req.SubscriptionType}
	var g Group
	if err := c.call(ctx, adminRequest(http.MethodPost, "/api/v1/admin/groups", body), &g); err != nil {
		return nil, fmt.Errorf("create group: %w", err)
	}
	return &g, nil
}

// GetGroup reads one group; 404 GROUP_NOT_FOUND when it does not exist (IsNotFound).
func (c *Client) GetGroup(ctx context.Context, id int64) (*Group, error) {
	var g Group
	if err := c.call(ctx, adminRequest(http.MethodGet, idPath("/api/v1/admin/groups/%d", id), nil), &g); err != nil {
		return nil, fmt.Errorf("get group: %w", err)
	}
	return &g, nil
}

// ListGroups lists groups matching search (empty = all), following every page.
func (c *Client) ListGroups(ctx context.Context, search string) ([]Group, error) {
	r := adminRequest(http.MethodGet, "/api/v1/admin/groups", nil)
	if search != "" {
		r.query = url.Values{"search": {search}}
	}
	gs, err := listAll[Group](ctx, c, r)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	return gs, nil
}

// FindGroupByName returns the group whose name is exactly name (search is a substring
// match on the host), or (nil, nil) when none exists.
func (c *Client) FindGroupByName(ctx context.Context, name string) (*Group, error) {
	gs, err := c.ListGroups(ctx, name)
	if err != nil {
		return nil, err
	}
	for i := range gs {
		if gs[i].Name == name {
			return &gs[i], nil
		}
	}
	return nil, nil
}

// DeleteGroup deletes a group; 404 GROUP_NOT_FOUND when unknown. Bound accounts stay,
// keys on the group stop working at once.
func (c *Client) DeleteGroup(ctx context.Context, id int64) error {
	if err := c.call(ctx, adminRequest(http.MethodDelete, idPath("/api/v1/admin/groups/%d", id), nil), nil); err != nil {
		return fmt.Errorf("delete group: %w", err)
	}
	return nil
}
