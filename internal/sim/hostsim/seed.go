package hostsim

import (
	"fmt"
	"time"
)

// SeedItem names the objects one imported item leaves on a host: a group, an account
// bound to it and, when Key is set, an end-user key of the seeded user on the group.
type SeedItem struct {
	Group, Account string
	Key, KeyValue  string
}

// Seeded holds the ids Seed gave the objects, in the order of the items.
type Seeded struct {
	UserID                 int64
	Groups, Accounts, Keys []int64
}

// Seed creates, directly in memory (no HTTP, no account probe, no latency), what an import
// of items leaves on a host: per item an openai group and an active, schedulable account
// bound to it, and (when userEmail is set) one user holding a key per item. It prepares a
// host with thousands of objects for reconcile and rollback scale tests in milliseconds.
func (s *Server) Seed(userEmail, userPassword string, items []SeedItem) Seeded {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var out Seeded
	var u *user
	if userEmail != "" {
		u = &user{id: s.newID("user"), email: userEmail, username: "crm-managed", password: userPassword, role: "user",
			status: "active", balance: 10, concurrency: 10, createdAt: now, updatedAt: now}
		s.users[u.id] = u
		out.UserID = u.id
	}
	for i, it := range items {
		g := &group{id: s.newID("group"), name: it.Group, desc: "seeded", platform: "openai", subType: "standard", rateMult: 1,
			status: "active", createdAt: now, updatedAt: now}
		s.groups[g.id] = g
		out.Groups = append(out.Groups, g.id)
		a := &account{id: s.newID("account"), name: it.Account, notes: "seeded", platform: "openai", typ: "apikey",
			apiKey: fmt.Sprintf("sk-seeded-%08d", i), baseURL: "http://127.0.0.1:9",
			credentials: map[string]any{"base_url": "http://127.0.0.1:9", "model_mapping": map[string]any{"m": "m"}},
			status:      "active", schedulable: true, rateMult: 1, priority: 1, concurrency: 5,
			groupIDs: []int64{g.id}, bindAt: map[int64]time.Time{g.id: now}, createdAt: now, updatedAt: now}
		s.initExtra(a, nil)
		s.accounts[a.id] = a
		out.Accounts = append(out.Accounts, a.id)
		if u != nil && it.Key != "" {
			gid := g.id
			k := &apiKey{id: s.newID("key"), userID: u.id, key: it.KeyValue, name: it.Key, groupID: &gid, status: "active",
				createdAt: now, updatedAt: now}
			s.keys[k.id] = k
			out.Keys = append(out.Keys, k.id)
		}
	}
	s.bumpAccounts()
	return out
}
