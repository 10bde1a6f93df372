package hostsim

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"time"
)

const timeFmt = time.RFC3339Nano

func ts(t time.Time) string { return t.UTC().Format(timeFmt) }

func tsPtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return ts(*t)
}

// groupObj renders a group with the named template ("group", "group_nested", "group_all").
func (s *Server) groupObj(tmpl string, g *group) map[string]any {
	m := overlay(s.prof.tmpl(tmpl), map[string]any{
		"id": g.id, "name": g.name, "description": g.desc, "platform": g.platform,
		"rate_multiplier": g.rateMult, "is_exclusive": g.exclusive, "status": g.status,
		"subscription_type": g.subType, "daily_limit_usd": g.daily, "weekly_limit_usd": g.weekly,
		"monthly_limit_usd": g.monthly, "created_at": ts(g.createdAt), "updated_at": ts(g.updatedAt),
	})
	if s.prof.allowlist {
		al := map[string]any{"enabled": g.allowEnabled}
		if len(g.allowModels) > 0 {
			ms := make([]any, 0, len(g.allowModels))
			for _, x := range g.allowModels {
				ms = append(ms, x)
			}
			al["models"] = ms
		}
		m["model_allowlist"] = al
	}
	if tmpl == "group_all" {
		n, active := 0, 0
		for _, a := range s.accounts {
			if a.boundTo(g.id) {
				n++
				if a.status == "active" {
					active++
				}
			}
		}
		m["account_count"], m["active_account_count"] = n, active
	}
	return m
}

func (s *Server) liveGroup(id int64) *group {
	g := s.groups[id]
	if g == nil || g.deleted {
		return nil
	}
	return g
}

func (s *Server) sortedGroups() []*group {
	var gs []*group
	for _, g := range s.groups {
		if !g.deleted {
			gs = append(gs, g)
		}
	}
	sort.Slice(gs, func(i, j int) bool { return gs[i].id < gs[j].id })
	return gs
}

func (s *Server) serveGroups(w http.ResponseWriter, r *http.Request, rest string) {
	if rest == "/groups" && r.Method == http.MethodPost {
		s.createGroup(w, r)
		return
	}
	if rest == "/groups" && r.Method == http.MethodGet {
		q := r.URL.Query()
		var gs []*group
		for _, g := range s.sortedGroups() {
			if p := q.Get("platform"); p != "" && g.platform != p {
				continue
			}
			if st := q.Get("status"); st != "" && g.status != st {
				continue
			}
			if sr := q.Get("search"); sr != "" && !strings.Contains(strings.ToLower(g.name+" "+g.desc), strings.ToLower(sr)) {
				continue
			}
			if ex := q.Get("is_exclusive"); ex != "" && (ex == "true") != g.exclusive {
				continue
			}
			gs = append(gs, g)
		}
		ok(w, paginateFunc(r, len(gs), func(i int) any { return s.groupObj("group", gs[i]) }))
		return
	}
	if rest == "/groups/all" && r.Method == http.MethodGet {
		items := []any{}
		for _, g := range s.sortedGroups() {
			if p := r.URL.Query().Get("platform"); (p == "" || g.platform == p) && g.status == "active" {
				items = append(items, s.groupObj("group_all", g))
			}
		}
		ok(w, items)
		return
	}
	if ids, m := route(rest, "/groups/:id/api-keys"); m && r.Method == http.MethodGet {
		if s.liveGroup(ids[0]) == nil {
			typedErr(w, 404, "GROUP_NOT_FOUND", "group not found")
			return
		}
		var ks []*apiKey
		for _, k := range s.keys {
			if k.groupID != nil && *k.groupID == ids[0] {
				ks = append(ks, k)
			}
		}
		sort.Slice(ks, func(i, j int) bool { return ks[i].id > ks[j].id })
		items := []any{}
		for _, k := range ks {
			items = append(items, s.keyObj("key_admin_list", k))
		}
		ok(w, paginate(r, items))
		return
	}
	if ids, m := route(rest, "/groups/:id"); m {
		g := s.liveGroup(ids[0])
		if g == nil {
			typedErr(w, 404, "GROUP_NOT_FOUND", "group not found")
			return
		}
		switch r.Method {
		case http.MethodGet:
			ok(w, s.groupObj("group", g))
		case http.MethodDelete:
			s.deleteGroup(g)
			deleted(w, "Group deleted successfully")
		default:
			notFoundText(w)
		}
		return
	}
	notFoundText(w)
}

func (s *Server) createGroup(w http.ResponseWriter, r *http.Request) {
	var req map[string]any
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		bindErr(w, err.Error())
		return
	}
	name, _ := req["name"].(string)
	if name == "" {
		bindErr(w, "Key: 'CreateGroupRequest.Name' Error:Field validation for 'Name' failed on the 'required' tag")
		return
	}
	platform, _ := req["platform"].(string)
	if platform == "" {
		platform = "anthropic"
	}
	if !s.prof.groupPlatforms[platform] {
		if s.prof.fork {
			typedErr(w, 400, "INVALID_PLATFORM", "invalid platform")
		} else {
			bindErr(w, "Key: 'CreateGroupRequest.Platform' Error:Field validation for 'Platform' failed on the 'oneof' tag")
		}
		return
	}
	subType, _ := req["subscription_type"].(string)
	if subType == "" {
		subType = "standard"
	}
	if subType != "standard" && subType != "subscription" {
		bindErr(w, "Key: 'CreateGroupRequest.SubscriptionType' Error:Field validation for 'SubscriptionType' failed on the 'oneof' tag")
		return
	}
	for _, g := range s.groups {
		if !g.deleted && g.name == name {
			typedErr(w, 409, "GROUP_EXISTS", "group name already exists")
			return
		}
	}
	rm, _ := req["rate_multiplier"].(float64)
	if rm <= 0 {
		if s.prof.rateMultRequired {
			internalErr(w)
			return
		}
		rm = 1
	}
	desc, _ := req["description"].(string)
	excl, _ := req["is_exclusive"].(bool)
	var allowOn bool
	var allow []string
	if al, has := req["model_allowlist"].(map[string]any); has && s.prof.allowlist {
		allowOn, _ = al["enabled"].(bool)
		seen := map[string]bool{}
		list, _ := al["models"].([]any)
		for _, x := range list {
			if m, _ := x.(string); strings.TrimSpace(m) != "" && !seen[strings.ToLower(strings.TrimSpace(m))] {
				seen[strings.ToLower(strings.TrimSpace(m))] = true
				allow = append(allow, strings.TrimSpace(m))
			}
		}
		if allowOn && len(allow) == 0 {
			typedErr(w, 400, "INVALID_MODEL_ALLOWLIST", "model allowlist must not be empty when enabled")
			return
		}
	}
	now := s.now()
	g := &group{id: s.newID("group"), name: name, desc: desc, platform: platform, subType: subType, rateMult: rm,
		exclusive: excl, status: "active", daily: req["daily_limit_usd"], weekly: req["weekly_limit_usd"],
		monthly: req["monthly_limit_usd"], createdAt: now, updatedAt: now, allowEnabled: allowOn, allowModels: allow}
	s.groups[g.id] = g
	ok(w, s.groupObj("group_create", g))
}

// deleteGroup soft-deletes a group: bindings go, subscriptions go, keys keep
// pointing at it (129/179 answer GROUP_DELETED) or lose it (fork).
func (s *Server) deleteGroup(g *group) {
	g.deleted = true
	for _, a := range s.accounts {
		if a.boundTo(g.id) {
			a.groupIDs = removeID(a.groupIDs, g.id)
			delete(a.bindAt, g.id)
		}
	}
	s.bumpAccounts()
	for id, sub := range s.subs {
		if sub.groupID == g.id {
			delete(s.subs, id)
		}
	}
	for _, u := range s.users {
		u.allowedGroups = removeID(u.allowedGroups, g.id)
	}
	if s.prof.fork {
		for _, k := range s.keys {
			if k.groupID != nil && *k.groupID == g.id {
				k.groupID = nil
			}
		}
	}
}

func removeID(ids []int64, id int64) []int64 {
	out := ids[:0:0]
	for _, x := range ids {
		if x != id {
			out = append(out, x)
		}
	}
	return out
}
