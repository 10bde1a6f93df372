package hostsim

import (
	"sort"
	"strings"
	"time"
)

type group struct {
	id            int64
	name, desc    string
	platform      string
	subType       string
	rateMult      float64
	exclusive     bool
	status        string
	daily, weekly any // nil or float64, echoed as sent
	monthly       any
	createdAt     time.Time
	updatedAt     time.Time
	deleted       bool
	// 0.2.x model_allowlist: when enabled, only these models (exact, or a trailing-*
	// prefix, case-insensitive) pass the gateway.
	allowEnabled bool
	allowModels  []string
}

// allows reports whether an enabled allowlist lets model through (always true when off).
func (g *group) allows(model string) bool {
	if !g.allowEnabled {
		return true
	}
	m := strings.ToLower(model)
	for _, p := range g.allowModels {
		p = strings.ToLower(p)
		if p == m || strings.HasSuffix(p, "*") && strings.HasPrefix(m, strings.TrimSuffix(p, "*")) {
			return true
		}
	}
	return false
}

type account struct {
	id                int64
	name              string
	notes             any // nil or string
	platform, typ     string
	apiKey, baseURL   string
	credentials       map[string]any // as sent, without api_key
	extra             map[string]any // nil = JSON null
	gatewayProtocol   string         // fork protocol_gateway
	concurrency       int
	priority          int
	rateMult          float64
	status, errMsg    string
	schedulable       bool
	rateLimitedAt     *time.Time
	rateLimitResetAt  *time.Time
	rateLimitReason   any
	groupIDs          []int64
	bindAt            map[int64]time.Time
	createdAt         time.Time
	updatedAt         time.Time
	lastUsedAt        *time.Time
	tempUnschedUntil  *time.Time
	tempUnschedReason string
	behavior          Behavior
	testsRun          int
	firstRouted       time.Time // first gateway request that considered it (WarmupFromFirstUse)
}

type user struct {
	id            int64
	email         string
	username      string
	password      string
	role          string
	notes         string
	balance       float64
	concurrency   int
	status        string
	allowedGroups []int64
	createdAt     time.Time
	updatedAt     time.Time
	lastActive    *time.Time
}

type apiKey struct {
	id        int64
	userID    int64
	key       string
	name      string
	groupID   *int64
	status    string
	quota     float64
	createdAt time.Time
	updatedAt time.Time
	lastUsed  *time.Time
}

type subscription struct {
	id           int64
	userID       int64
	groupID      int64
	validityDays int
	notes        string
	startsAt     time.Time
	expiresAt    time.Time
	createdAt    time.Time
	assignedBy   int64
	revoked      bool
}

// Counts is the number of live objects, excluding the built-in admin user
// and the built-in "default" group.
type Counts struct{ Groups, Accounts, Users, Keys, Subscriptions int }

// GroupState is a test-facing snapshot of a group.
type GroupState struct {
	ID               int64
	Name             string
	Description      string
	Platform         string
	SubscriptionType string
	RateMultiplier   float64
	IsExclusive      bool
	Status           string
}

// AccountState is a test-facing snapshot of an account.
type AccountState struct {
	ID               int64
	Name             string
	Notes            string
	Platform         string
	Type             string
	BaseURL          string
	Status           string
	ErrorMessage     string
	Schedulable      bool
	GroupIDs         []int64
	ModelMapping     map[string]string
	Extra            map[string]any
	RateLimitResetAt *time.Time
	CreatedAt        time.Time
}

// UserState is a test-facing snapshot of a user.
type UserState struct {
	ID            int64
	Email         string
	Username      string
	Role          string
	Balance       float64
	Status        string
	AllowedGroups []int64
}

// KeyState is a test-facing snapshot of an end-user API key (with secret).
type KeyState struct {
	ID      int64
	UserID  int64
	Name    string
	Key     string
	GroupID int64 // 0 = no group
	Status  string
}

// SubscriptionState is a test-facing snapshot of a live subscription.
type SubscriptionState struct {
	ID           int64
	UserID       int64
	GroupID      int64
	ValidityDays int
	Notes        string
	Status       string
	ExpiresAt    time.Time
}

// State is a snapshot of every live object, sorted by id.
type State struct {
	Groups        []GroupState
	Accounts      []AccountState
	Users         []UserState
	Keys          []KeyState
	Subscriptions []SubscriptionState
}

// Counts returns the number of live objects.
func (s *Server) Counts() Counts {
	st := s.State()
	return Counts{Groups: len(st.Groups), Accounts: len(st.Accounts), Users: len(st.Users), Keys: len(st.Keys), Subscriptions: len(st.Subscriptions)}
}

// State returns a snapshot of all live objects (built-ins excluded).
func (s *Server) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st State
	for _, g := range s.groups {
		if g.deleted || g.id == defaultGroupID {
			continue
		}
		st.Groups = append(st.Groups, GroupState{ID: g.id, Name: g.name, Description: g.desc, Platform: g.platform,
			SubscriptionType: g.subType, RateMultiplier: g.rateMult, IsExclusive: g.exclusive, Status: g.status})
	}
	for _, a := range s.accounts {
		notes, _ := a.notes.(string)
		st.Accounts = append(st.Accounts, AccountState{ID: a.id, Name: a.name, Notes: notes, Platform: a.platform, Type: a.typ,
			BaseURL: a.baseURL, Status: a.status, ErrorMessage: a.errMsg, Schedulable: a.schedulable,
			GroupIDs: append([]int64(nil), a.groupIDs...), ModelMapping: a.mapping(), Extra: deepCopyMap(a.extra),
			RateLimitResetAt: a.rateLimitResetAt, CreatedAt: a.createdAt})
	}
	for _, u := range s.users {
		if u.id == adminUserID {
			continue
		}
		st.Users = append(st.Users, UserState{ID: u.id, Email: u.email, Username: u.username, Role: u.role,
			Balance: u.balance, Status: u.status, AllowedGroups: append([]int64(nil), u.allowedGroups...)})
	}
	for _, k := range s.keys {
		var gid int64
		if k.groupID != nil {
			gid = *k.groupID
		}
		st.Keys = append(st.Keys, KeyState{ID: k.id, UserID: k.userID, Name: k.name, Key: k.key, GroupID: gid, Status: k.status})
	}
	for _, sub := range s.subs {
		if sub.revoked {
			continue
		}
		st.Subscriptions = append(st.Subscriptions, SubscriptionState{ID: sub.id, UserID: sub.userID, GroupID: sub.groupID,
			ValidityDays: sub.validityDays, Notes: sub.notes, Status: "active", ExpiresAt: sub.expiresAt})
	}
	sort.Slice(st.Groups, func(i, j int) bool { return st.Groups[i].ID < st.Groups[j].ID })
	sort.Slice(st.Accounts, func(i, j int) bool { return st.Accounts[i].ID < st.Accounts[j].ID })
	sort.Slice(st.Users, func(i, j int) bool { return st.Users[i].ID < st.Users[j].ID })
	sort.Slice(st.Keys, func(i, j int) bool { return st.Keys[i].ID < st.Keys[j].ID })
	sort.Slice(st.Subscriptions, func(i, j int) bool { return st.Subscriptions[i].ID < st.Subscriptions[j].ID })
	return st
}

// DeleteAccountOutOfBand removes an account behind the control plane's back
// (drift for reconcile tests).
func (s *Server) DeleteAccountOutOfBand(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.accounts, id)
	s.bumpAccounts()
}

func deepCopyMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	return deepCopy(m).(map[string]any)
}

// mapping returns credentials.model_mapping as strings.
func (a *account) mapping() map[string]string {
	mm, _ := a.credentials["model_mapping"].(map[string]any)
	out := make(map[string]string, len(mm))
	for k, v := range mm {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

func (a *account) boundTo(gid int64) bool {
	for _, g := range a.groupIDs {
		if g == gid {
			return true
		}
	}
	return false
}
