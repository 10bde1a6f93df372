package hostsim

import (
	"net/http"
	"sort"
	"strconv"
	"time"
)

func (s *Server) subObj(tmpl string, sub *subscription) map[string]any {
	m := overlay(s.prof.tmpl(tmpl), map[string]any{"id": sub.id, "user_id": sub.userID, "group_id": sub.groupID,
		"starts_at": ts(sub.startsAt), "expires_at": ts(sub.expiresAt), "status": "active",
		"created_at": ts(sub.createdAt), "updated_at": ts(sub.createdAt)})
	if _, has := m["notes"]; has {
		m["notes"] = sub.notes
	}
	if _, has := m["assigned_by"]; has {
		m["assigned_by"] = sub.assignedBy
	}
	if _, has := m["assigned_at"]; has {
		m["assigned_at"] = ts(sub.createdAt)
	}
	if _, has := m["user"]; has {
		if u := s.users[sub.userID]; u != nil {
			m["user"] = s.userObj("user_nested", u, nil)
		}
	}
	if _, has := m["assigned_by_user"]; has {
		if u := s.users[sub.assignedBy]; u != nil {
			m["assigned_by_user"] = s.userObj("user_nested", u, nil)
		}
	}
	if _, has := m["group"]; has {
		if g := s.groups[sub.groupID]; g != nil {
			m["group"] = s.groupObj("group_nested", g)
		}
	}
	return m
}

func (s *Server) sortedSubs() []*subscription {
	var l []*subscription
	for _, sub := range s.subs {
		if !sub.revoked {
			l = append(l, sub)
		}
	}
	sort.Slice(l, func(i, j int) bool { return l[i].id < l[j].id })
	return l
}

// activeSub returns the live, unexpired subscription of a user to a group.
func (s *Server) activeSub(uid, gid int64) *subscription {
	now := s.now()
	for _, sub := range s.subs {
		if !sub.revoked && sub.userID == uid && sub.groupID == gid && now.Before(sub.expiresAt) {
			return sub
		}
	}
	return nil
}

func (s *Server) serveSubscriptions(w http.ResponseWriter, r *http.Request, rest string, uid int64) {
	switch {
	case rest == "/subscriptions/assign" && r.Method == http.MethodPost:
		s.assignSub(w, r, uid)
		return
	case rest == "/subscriptions" && r.Method == http.MethodGet:
		q := r.URL.Query()
		items := []any{}
		for _, sub := range s.sortedSubs() {
			if v := q.Get("user_id"); v != "" && strconv.FormatInt(sub.userID, 10) != v {
				continue
			}
			if v := q.Get("group_id"); v != "" && strconv.FormatInt(sub.groupID, 10) != v {
				continue
			}
			if v := q.Get("status"); v != "" && v != "active" {
				continue
			}
			items = append(items, s.subObj("subscription_list", sub))
		}
		ok(w, paginate(r, items))
		return
	}
	if ids, m := route(rest, "/subscriptions/:id"); m {
		sub := s.subs[ids[0]]
		if sub == nil || sub.revoked {
			typedErr(w, 404, "SUBSCRIPTION_NOT_FOUND", "subscription not found")
			return
		}
		switch r.Method {
		case http.MethodGet:
			ok(w, s.subObj("subscription_get", sub))
		case http.MethodDelete:
			sub.revoked = true
			deleted(w, "Subscription revoked successfully")
		default:
			notFoundText(w)
		}
		return
	}
	notFoundText(w)
}

func (s *Server) assignSub(w http.ResponseWriter, r *http.Request, uid int64) {
	req, err := decodeBody(r)
	userID, hasU := num(req, "user_id")
	groupID, hasG := num(req, "group_id")
	if err != nil || !hasU || !hasG {
		bindErr(w, "Key: 'AssignSubscriptionRequest.UserID' Error:Field validation for 'UserID' failed on the 'required' tag")
		return
	}
	days := 30
	if d, has := num(req, "validity_days"); has && d > 0 {
		days = int(d)
	}
	if days > 36500 {
		bindErr(w, "Key: 'AssignSubscriptionRequest.ValidityDays' Error:Field validation for 'ValidityDays' failed on the 'max' tag")
		return
	}
	notes := str(req, "notes")
	g := s.liveGroup(int64(groupID))
	if g == nil {
		typedErr(w, 404, "GROUP_NOT_FOUND", "group not found")
		return
	}
	if g.subType != "subscription" {
		typedErr(w, 400, "GROUP_NOT_SUBSCRIPTION_TYPE", "group is not a subscription type")
		return
	}
	if s.users[int64(userID)] == nil {
		typedErr(w, 404, "USER_NOT_FOUND", "user not found")
		return
	}
	if ex := s.activeSub(int64(userID), g.id); ex != nil {
		reason := ""
		switch {
		case ex.validityDays != days:
			reason = "validity_days_mismatch"
		case ex.notes != notes:
			reason = "notes_mismatch"
		}
		if reason != "" {
			writeJSON(w, 409, map[string]any{"code": 409, "message": "subscription exists but request conflicts with existing assignment semantics",
				"reason": "SUBSCRIPTION_ASSIGN_CONFLICT", "metadata": map[string]any{"conflict_reason": reason}})
			return
		}
		// The identical repeat answers the stored row without the joined users.
		m := s.subObj("subscription", ex)
		delete(m, "user")
		delete(m, "assigned_by_user")
		ok(w, m)
		return
	}
	// The hosts check for an existing subscription and then insert; two assigns of one
	// (user, group) at the same time both pass the check and the second insert hits the
	// unique index: 409 SUBSCRIPTION_ALREADY_EXISTS (0.1.129/0.1.179 source:
	// user_subscription_repo translates the violation). The insert is in flight for as long
	// as an idempotent write.
	pair := [2]int64{int64(userID), g.id}
	if s.subInserting[pair] {
		// The database holds this insert until the first one commits, then refuses it.
		for s.subInserting[pair] {
			s.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
			s.mu.Lock()
		}
		typedErr(w, 409, "SUBSCRIPTION_ALREADY_EXISTS", "subscription already exists for this user and group")
		return
	}
	if d := s.idempotentWrite(); d > 0 {
		s.subInserting[pair] = true
		s.mu.Unlock()
		time.Sleep(d)
		s.mu.Lock()
		delete(s.subInserting, pair)
	}
	now := s.now()
	sub := &subscription{id: s.newID("sub"), userID: int64(userID), groupID: g.id, validityDays: days, notes: notes,
		startsAt: now, expiresAt: now.Add(time.Duration(days) * 24 * time.Hour), createdAt: now, assignedBy: uid}
	s.subs[sub.id] = sub
	ok(w, s.subObj("subscription", sub))
}
