package hostsim

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"time"
)

var customKeyRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// keyObj renders a key with the named template (full secret included, as the hosts do).
func (s *Server) keyObj(tmpl string, k *apiKey) map[string]any {
	var gid any
	if k.groupID != nil {
		gid = *k.groupID
	}
	m := overlay(s.prof.tmpl(tmpl), map[string]any{"id": k.id, "user_id": k.userID, "key": k.key, "name": k.name,
		"group_id": gid, "status": k.status, "quota": k.quota, "last_used_at": tsPtr(k.lastUsed),
		"created_at": ts(k.createdAt), "updated_at": ts(k.updatedAt)})
	if _, has := m["group"]; has {
		if g := s.keyGroup(k); g != nil {
			m["group"] = s.groupObj("group_nested", g)
		} else {
			m["group"] = nil
		}
	}
	if _, has := m["user"]; has {
		if u := s.users[k.userID]; u != nil {
			m["user"] = s.userObj("user_nested", u, nil)
		}
	}
	if _, has := m["group_ids"]; has {
		l := []any{}
		if k.groupID != nil {
			l = append(l, *k.groupID)
		}
		m["group_ids"] = l
	}
	if ags, has := m["api_key_groups"].([]any); has {
		l := []any{}
		if g := s.keyGroup(k); g != nil && len(ags) > 0 {
			ag, _ := deepCopy(ags[0]).(map[string]any)
			l = append(l, overlay(ag, map[string]any{"group_id": g.id, "group_name": g.name, "platform": g.platform}))
		}
		m["api_key_groups"] = l
	}
	return m
}

func (s *Server) keyGroup(k *apiKey) *group {
	if k.groupID == nil {
		return nil
	}
	return s.liveGroup(*k.groupID)
}

func (s *Server) userKeys(uid int64) []*apiKey {
	var ks []*apiKey
	for _, k := range s.keys {
		if k.userID == uid {
			ks = append(ks, k)
		}
	}
	sort.Slice(ks, func(i, j int) bool { return ks[i].id > ks[j].id })
	return ks
}

// serveKeys handles /api/v1/keys (user JWT only).
func (s *Server) serveKeys(w http.ResponseWriter, r *http.Request, path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, authed := s.userAuth(w, r)
	if !authed {
		return
	}
	if path == "/api/v1/keys" {
		switch r.Method {
		case http.MethodPost:
			s.withIdempotency(w, r, fmt.Sprintf("keys:%d", u.id), func(w http.ResponseWriter, r *http.Request) { s.createKey(w, r, u) })
		case http.MethodGet:
			items := []any{}
			for _, k := range s.userKeys(u.id) {
				items = append(items, s.keyObj("key_list", k))
			}
			ok(w, paginate(r, items))
		default:
			notFoundText(w)
		}
		return
	}
	ids, m := route(path, "/api/v1/keys/:id")
	if !m {
		notFoundText(w)
		return
	}
	k := s.keys[ids[0]]
	if k == nil || k.userID != u.id {
		typedErr(w, 404, "API_KEY_NOT_FOUND", "api key not found")
		return
	}
	switch r.Method {
	case http.MethodGet:
		ok(w, s.keyObj("key_get", k))
	case http.MethodDelete:
		delete(s.keys, k.id)
		deleted(w, "API key deleted successfully")
	default:
		notFoundText(w)
	}
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request, u *user) {
	req, err := decodeBody(r)
	if err != nil {
		bindErr(w, err.Error())
		return
	}
	name := str(req, "name")
	if name == "" {
		bindErr(w, "Key: 'CreateAPIKeyRequest.Name' Error:Field validation for 'Name' failed on the 'required' tag")
		return
	}
	if !s.keyCreateAllowed(w, u) {
		return
	}
	var gid *int64
	if f, has := num(req, "group_id"); has && f > 0 {
		id := int64(f)
		g := s.liveGroup(id)
		if g == nil {
			typedErr(w, 404, "GROUP_NOT_FOUND", "group not found")
			return
		}
		if !s.mayBind(u, g) {
			typedErr(w, 403, "GROUP_NOT_ALLOWED", "user is not allowed to bind this group")
			return
		}
		gid = &id
	}
	value := str(req, "custom_key")
	if value != "" {
		if len(value) < 16 {
			typedErr(w, 400, "API_KEY_TOO_SHORT", "api key must be at least 16 characters")
			return
		}
		if !customKeyRe.MatchString(value) {
			typedErr(w, 400, "API_KEY_INVALID_CHARS", "api key may only contain letters, digits, '_' and '-'")
			return
		}
		for _, k := range s.keys {
			if k.key == value {
				typedErr(w, 409, "API_KEY_EXISTS", "api key already exists")
				return
			}
		}
	} else {
		value = "sk-" + randHex(32)
	}
	now := s.now()
	k := &apiKey{id: s.newID("key"), userID: u.id, key: value, name: name, groupID: gid, status: "active", createdAt: now, updatedAt: now}
	if q, has := num(req, "quota"); has {
		k.quota = q
	}
	s.keys[k.id] = k
	ok(w, s.keyObj("key_create", k))
}

// mayBind: subscription groups need an active subscription, exclusive groups
// an allowed_groups entry.
func (s *Server) mayBind(u *user, g *group) bool {
	if g.subType == "subscription" {
		return s.activeSub(u.id, g.id) != nil
	}
	if g.exclusive {
		for _, id := range u.allowedGroups {
			if id == g.id {
				return true
			}
		}
		return false
	}
	return true
}

// keyLimits returns the API-key creation limits in force (0.2.11+), Options first.
func (s *Server) keyLimits() KeyLimits {
	l := s.prof.keyLimits
	if s.opts.KeyLimits.MaxActive != 0 {
		l.MaxActive = s.opts.KeyLimits.MaxActive
	}
	if s.opts.KeyLimits.MaxPerHour != 0 {
		l.MaxPerHour = s.opts.KeyLimits.MaxPerHour
	}
	return l
}

// keyCreateAllowed applies 0.2.11's limits before anything else of a key creation: the
// count of the user's non-deleted keys (403 API_KEY_COUNT_EXCEEDED), then a fixed
// one-hour window of creation attempts, which counts every attempt that passes the count
// check, even one that fails validation afterwards. The hourly answer's status and reason
// are not documented upstream; 429 API_KEY_CREATE_RATE_LIMITED is this simulator's guess.
// Caller holds s.mu.
func (s *Server) keyCreateAllowed(w http.ResponseWriter, u *user) bool {
	l := s.keyLimits()
	if l.MaxActive > 0 && len(s.userKeys(u.id)) >= l.MaxActive {
		typedErr(w, 403, "API_KEY_COUNT_EXCEEDED", "maximum number of API keys reached")
		return false
	}
	if l.MaxPerHour > 0 {
		now := s.now()
		win := s.keyWindows[u.id]
		if win == nil || now.Sub(win.start) >= time.Hour {
			win = &keyWindow{start: now}
			s.keyWindows[u.id] = win
		}
		if win.count >= l.MaxPerHour {
			w.Header().Set("Retry-After", strconv.Itoa(int(win.start.Add(time.Hour).Sub(now).Seconds())+1))
			typedErr(w, 429, "API_KEY_CREATE_RATE_LIMITED", "too many API keys created, please try again later")
			return false
		}
		win.count++
	}
	return true
}

// keyWindow is one user's fixed hour of key creations.
type keyWindow struct {
	start time.Time
	count int
}

// KeyCreations returns how many key creations user uid attempted in its current hour
// window (tests check that an import stays within the limits).
func (s *Server) KeyCreations(uid int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.keyWindows[uid]; w != nil {
		return w.count
	}
	return 0
}
