package hostsim

import (
	"fmt"
	"net/http"
	"net/mail"
	"sort"
	"strings"
)

// userObj renders a user with the named template; for "login_user" the
// caller passes the template node to reuse.
func (s *Server) userObj(tmpl string, u *user, base any) map[string]any {
	t, _ := base.(map[string]any)
	if tmpl != "login_user" {
		t = s.prof.tmpl(tmpl)
	}
	var allowed any
	if len(u.allowedGroups) > 0 {
		l := []any{}
		for _, g := range u.allowedGroups {
			l = append(l, g)
		}
		allowed = l
	}
	m := overlay(t, map[string]any{"id": u.id, "email": u.email, "username": u.username, "role": u.role,
		"balance": u.balance, "concurrency": u.concurrency, "status": u.status, "allowed_groups": allowed,
		"created_at": ts(u.createdAt), "updated_at": ts(u.updatedAt)})
	if _, has := m["notes"]; has {
		m["notes"] = u.notes
	}
	// last_active_at (129/179 only) is omitted until the user has been active once.
	if s.prof.fork {
		delete(m, "last_active_at")
	} else if u.lastActive != nil {
		m["last_active_at"] = ts(*u.lastActive)
	} else {
		delete(m, "last_active_at")
	}
	return m
}

func (s *Server) serveUsers(w http.ResponseWriter, r *http.Request, rest string, uid int64) {
	switch {
	case rest == "/users" && r.Method == http.MethodPost:
		s.createUser(w, r)
		return
	case rest == "/users" && r.Method == http.MethodGet:
		var us []*user
		sr := strings.ToLower(r.URL.Query().Get("search"))
		for _, u := range s.users {
			if sr == "" || strings.Contains(strings.ToLower(u.email+" "+u.username), sr) {
				us = append(us, u)
			}
		}
		sort.Slice(us, func(i, j int) bool { return us[i].id > us[j].id })
		ok(w, paginateFunc(r, len(us), func(i int) any { return s.userObj("user_list", us[i], nil) }))
		return
	}
	if ids, m := route(rest, "/users/:id"); m {
		u := s.users[ids[0]]
		if u == nil {
			typedErr(w, 404, "USER_NOT_FOUND", "user not found")
			return
		}
		switch r.Method {
		case http.MethodGet:
			ok(w, s.userObj("user_get", u, nil))
		case http.MethodPut:
			s.updateUser(w, r, u)
		case http.MethodDelete:
			if u.role == "admin" {
				internalErr(w)
				return
			}
			s.deleteUser(u)
			deleted(w, "User deleted successfully")
		default:
			notFoundText(w)
		}
		return
	}
	if ids, m := route(rest, "/users/:id/balance"); m && r.Method == http.MethodPost {
		s.withIdempotency(w, r, fmt.Sprintf("balance:%d:%d", uid, ids[0]), func(w http.ResponseWriter, r *http.Request) { s.updateBalance(w, r, ids[0]) })
		return
	}
	if ids, m := route(rest, "/users/:id/api-keys"); m && r.Method == http.MethodGet {
		if s.users[ids[0]] == nil {
			typedErr(w, 404, "USER_NOT_FOUND", "user not found")
			return
		}
		ks := s.userKeys(ids[0])
		ok(w, paginateFunc(r, len(ks), func(i int) any { return s.keyObj("key_admin_list", ks[i]) }))
		return
	}
	if ids, m := route(rest, "/users/:id/subscriptions"); m && r.Method == http.MethodGet {
		if s.users[ids[0]] == nil {
			typedErr(w, 404, "USER_NOT_FOUND", "user not found")
			return
		}
		items := []any{}
		for _, sub := range s.sortedSubs() {
			if sub.userID == ids[0] {
				items = append(items, s.subObj("subscription_user_list", sub))
			}
		}
		ok(w, items)
		return
	}
	notFoundText(w)
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	req, err := decodeBody(r)
	if err != nil {
		bindErr(w, err.Error())
		return
	}
	email, pw := str(req, "email"), str(req, "password")
	var errs []string
	if _, perr := mail.ParseAddress(email); perr != nil || !strings.Contains(email, "@") {
		tag := "email"
		if email == "" {
			tag = "required"
		}
		errs = append(errs, "Key: 'CreateUserRequest.Email' Error:Field validation for 'Email' failed on the '"+tag+"' tag")
	}
	if len(pw) < 6 {
		tag := "min"
		if pw == "" {
			tag = "required"
		}
		errs = append(errs, "Key: 'CreateUserRequest.Password' Error:Field validation for 'Password' failed on the '"+tag+"' tag")
	}
	role := str(req, "role")
	if role == "" {
		role = "user"
	}
	if role != "user" && (role != "admin" || !s.prof.line179) {
		errs = append(errs, "Key: 'CreateUserRequest.Role' Error:Field validation for 'Role' failed on the 'oneof' tag")
	}
	if len(errs) > 0 {
		bindErr(w, strings.Join(errs, "\n"))
		return
	}
	for _, u := range s.users {
		if strings.EqualFold(u.email, email) {
			typedErr(w, 409, "EMAIL_EXISTS", "email already exists")
			return
		}
	}
	now := s.now()
	u := &user{id: s.newID("user"), email: email, username: str(req, "username"), password: pw, role: role,
		notes: str(req, "notes"), status: "active", createdAt: now, updatedAt: now}
	if n, has := num(req, "concurrency"); has {
		u.concurrency = int(n)
	}
	if g, has := ids(req["allowed_groups"]); has {
		u.allowedGroups = g
	}
	s.users[u.id] = u
	ok(w, s.userObj("user_create", u, nil))
}

func (s *Server) updateUser(w http.ResponseWriter, r *http.Request, u *user) {
	req, err := decodeBody(r)
	if err != nil {
		bindErr(w, err.Error())
		return
	}
	if v := str(req, "username"); v != "" {
		u.username = v
	}
	if v := str(req, "password"); v != "" {
		u.password = v
	}
	if v := str(req, "role"); v == "user" || v == "admin" {
		u.role = v
	}
	if v := str(req, "status"); v == "active" || v == "disabled" {
		u.status = v
	}
	if v, has := req["notes"].(string); has {
		u.notes = v
	}
	if n, has := num(req, "concurrency"); has {
		u.concurrency = int(n)
	}
	if g, has := ids(req["allowed_groups"]); has {
		u.allowedGroups = g
	}
	u.updatedAt = s.now()
	ok(w, s.userObj("user_get", u, nil))
}

func (s *Server) updateBalance(w http.ResponseWriter, r *http.Request, id int64) {
	u := s.users[id]
	req, err := decodeBody(r)
	amount, _ := num(req, "balance")
	if err != nil || amount <= 0 {
		bindErr(w, "Key: 'UpdateBalanceRequest.Balance' Error:Field validation for 'Balance' failed on the 'required' tag")
		return
	}
	op := str(req, "operation")
	if op != "add" && op != "subtract" && op != "set" {
		bindErr(w, "Key: 'UpdateBalanceRequest.Operation' Error:Field validation for 'Operation' failed on the 'oneof' tag")
		return
	}
	if u == nil {
		typedErr(w, 404, "USER_NOT_FOUND", "user not found")
		return
	}
	switch op {
	case "add":
		u.balance += amount
	case "subtract":
		u.balance -= amount
	case "set":
		u.balance = amount
	}
	u.updatedAt = s.now()
	ok(w, s.userObj("user_balance", u, nil))
}

// deleteUser removes a user with its keys and subscriptions. Its JWTs stay valid tokens
// (they are signed, not stored): using one answers 401 USER_NOT_FOUND.
func (s *Server) deleteUser(u *user) {
	delete(s.users, u.id)
	for id, k := range s.keys {
		if k.userID == u.id {
			delete(s.keys, id)
		}
	}
	for id, sub := range s.subs {
		if sub.userID == u.id {
			delete(s.subs, id)
		}
	}
}
