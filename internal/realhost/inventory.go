package realhost

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// Inventory is what a host holds of the objects cn-relay-manager creates, read through the
// admin API: one line per object ("<id> <name>" and the fields that tie it to others),
// sorted. Two inventories are equal when the host holds exactly the same objects.
type Inventory struct {
	Groups        []string
	Accounts      []string
	Users         []string
	Keys          []string
	Subscriptions []string // live ones (active, expired)
	// Revoked lists revoked subscriptions that the host keeps as history: 0.1.179 revokes
	// by soft delete and lists them (status "revoked") for good, also after their user and
	// group are deleted; no API call removes them. 0.1.129 does not list them.
	Revoked []string
}

// Equal reports whether both inventories list the same live objects (revoked
// subscription history aside: see Revoked).
func (a Inventory) Equal(b Inventory) bool { return a.live() == b.live() }

func (a Inventory) live() string {
	a.Revoked = nil
	return a.String()
}

// String renders the inventory, one section per kind.
func (a Inventory) String() string {
	var sb strings.Builder
	for _, s := range []struct {
		name  string
		lines []string
	}{{"groups", a.Groups}, {"accounts", a.Accounts}, {"users", a.Users}, {"keys", a.Keys}, {"subscriptions", a.Subscriptions}, {"revoked subscriptions", a.Revoked}} {
		fmt.Fprintf(&sb, "%s (%d):\n", s.name, len(s.lines))
		for _, l := range s.lines {
			sb.WriteString("  " + l + "\n")
		}
	}
	return sb.String()
}

// Inventory lists the host's groups, accounts, users, every user's keys and every
// subscription (revoked ones apart).
func (h *Host) Inventory() (Inventory, error) {
	var inv Inventory
	var groups struct {
		Data []struct {
			ID       int64  `json:"id"`
			Name     string `json:"name"`
			Platform string `json:"platform"`
		} `json:"data"`
	}
	if err := h.Admin(http.MethodGet, "/api/v1/admin/groups/all", nil, &groups); err != nil {
		return inv, err
	}
	for _, g := range groups.Data {
		inv.Groups = append(inv.Groups, fmt.Sprintf("%d %s %s", g.ID, g.Name, g.Platform))
	}
	type acct struct {
		ID       int64   `json:"id"`
		Name     string  `json:"name"`
		GroupIDs []int64 `json:"group_ids"`
	}
	accts, err := pages[acct](h, "/api/v1/admin/accounts")
	if err != nil {
		return inv, err
	}
	for _, a := range accts {
		inv.Accounts = append(inv.Accounts, fmt.Sprintf("%d %s groups=%v", a.ID, a.Name, a.GroupIDs))
	}
	type user struct {
		ID    int64  `json:"id"`
		Email string `json:"email"`
		Role  string `json:"role"`
	}
	users, err := pages[user](h, "/api/v1/admin/users")
	if err != nil {
		return inv, err
	}
	type key struct {
		ID      int64  `json:"id"`
		Name    string `json:"name"`
		GroupID *int64 `json:"group_id"`
		Status  string `json:"status"`
	}
	for _, u := range users {
		inv.Users = append(inv.Users, fmt.Sprintf("%d %s %s", u.ID, u.Email, u.Role))
		keys, err := pages[key](h, fmt.Sprintf("/api/v1/admin/users/%d/api-keys", u.ID))
		if err != nil {
			return inv, err
		}
		for _, k := range keys {
			g := "none"
			if k.GroupID != nil {
				g = fmt.Sprint(*k.GroupID)
			}
			inv.Keys = append(inv.Keys, fmt.Sprintf("%d %s user=%d group=%s %s", k.ID, k.Name, u.ID, g, k.Status))
		}
	}
	type sub struct {
		ID      int64  `json:"id"`
		UserID  int64  `json:"user_id"`
		GroupID int64  `json:"group_id"`
		Status  string `json:"status"`
	}
	subs, err := pages[sub](h, "/api/v1/admin/subscriptions")
	if err != nil {
		return inv, err
	}
	for _, s := range subs {
		line := fmt.Sprintf("%d user=%d group=%d %s", s.ID, s.UserID, s.GroupID, s.Status)
		if s.Status == "revoked" {
			inv.Revoked = append(inv.Revoked, line)
		} else {
			inv.Subscriptions = append(inv.Subscriptions, line)
		}
	}
	for _, l := range [][]string{inv.Groups, inv.Accounts, inv.Users, inv.Keys, inv.Subscriptions, inv.Revoked} {
		sort.Strings(l)
	}
	return inv, nil
}

// pages follows the host's pagination on an admin list route.
func pages[T any](h *Host, path string) ([]T, error) {
	var all []T
	for p := 1; p <= 100; p++ {
		var env struct {
			Data struct {
				Items []T `json:"items"`
				Total int `json:"total"`
				Pages int `json:"pages"`
			} `json:"data"`
		}
		if err := h.Admin(http.MethodGet, fmt.Sprintf("%s?page=%d&page_size=100", path, p), nil, &env); err != nil {
			return nil, err
		}
		all = append(all, env.Data.Items...)
		if len(env.Data.Items) == 0 || p >= env.Data.Pages || len(all) >= env.Data.Total {
			break
		}
	}
	return all, nil
}

// RevokedSince returns the revoked subscriptions' ids that a is listing and before did not.
func (a Inventory) RevokedSince(before Inventory) []string {
	had := map[string]bool{}
	for _, l := range before.Revoked {
		had[strings.Fields(l)[0]] = true
	}
	var out []string
	for _, l := range a.Revoked {
		if id := strings.Fields(l)[0]; !had[id] {
			out = append(out, id)
		}
	}
	return out
}
