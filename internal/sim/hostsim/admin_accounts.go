package hostsim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

const redacted = "__sub2api_credential_redacted__"

// accountObj renders an account with the named template
// ("account_create", "account_get", "account_list").
func (s *Server) accountObj(tmpl string, a *account) map[string]any {
	creds := deepCopyMap(a.credentials)
	if creds == nil {
		creds = map[string]any{}
	}
	if s.prof.fork {
		creds["api_key"] = redacted
	}
	var extra any
	if a.extra != nil {
		extra = deepCopyMap(a.extra)
	}
	m := overlay(s.prof.tmpl(tmpl), map[string]any{
		"id": a.id, "name": a.name, "notes": a.notes, "platform": a.platform, "type": a.typ,
		"credentials": creds, "extra": extra, "concurrency": a.concurrency, "priority": a.priority,
		"rate_multiplier": a.rateMult, "status": a.status, "error_message": a.errMsg, "schedulable": a.schedulable,
		"rate_limited_at": tsPtr(a.rateLimitedAt), "rate_limit_reset_at": tsPtr(a.rateLimitResetAt),
		"last_used_at": s.lastUsedView(a), "created_at": ts(a.createdAt), "updated_at": ts(a.updatedAt),
	})
	if _, has := m["rate_limit_reason"]; has || a.rateLimitReason != nil {
		m["rate_limit_reason"] = a.rateLimitReason
	}
	if _, has := m["gateway_protocol"]; has || a.gatewayProtocol != "" {
		if a.gatewayProtocol != "" {
			m["gateway_protocol"] = a.gatewayProtocol
			m["gateway_batch_enabled"] = false
		} else {
			m["gateway_protocol"] = nil
		}
	}
	if s.prof.fork && tmpl == "account_list" {
		// The fork's list view carries a reduced extra.
		if ex, ok := m["extra"].(map[string]any); ok {
			delete(ex, "model_scope_v2")
		}
	}
	// The hosts write last_used_at lazily; recordings show null right after traffic.
	if _, has := m["group_ids"]; has {
		gids := []any{}
		groups := []any{}
		ags := []any{}
		for _, gid := range a.groupIDs {
			g := s.liveGroup(gid)
			if g == nil {
				continue
			}
			gids = append(gids, gid)
			groups = append(groups, s.groupObj("group_nested", g))
			ag := overlay(s.prof.tmpl("account_group"), map[string]any{"account_id": a.id, "group_id": gid,
				"priority": a.priority, "created_at": ts(a.bindAt[gid]), "group": s.groupObj("group_nested", g)})
			ags = append(ags, ag)
		}
		m["group_ids"], m["groups"], m["account_groups"] = gids, groups, ags
		if len(gids) == 0 {
			// omitempty on the hosts: an unbound account has no group fields.
			delete(m, "group_ids")
			delete(m, "groups")
			delete(m, "account_groups")
		}
	}
	if _, has := m["temp_unschedulable_until"]; has {
		m["temp_unschedulable_until"] = tsPtr(a.tempUnschedUntil)
		m["temp_unschedulable_reason"] = a.tempUnschedReason
	}
	return m
}

func (s *Server) serveAccounts(w http.ResponseWriter, r *http.Request, rest string, uid int64) {
	switch {
	case rest == "/accounts" && r.Method == http.MethodPost:
		s.withIdempotency(w, r, fmt.Sprintf("accounts:%d", uid), s.createAccount)
		return
	case rest == "/accounts" && r.Method == http.MethodGet:
		s.listAccounts(w, r)
		return
	}
	if ids, m := route(rest, "/accounts/:id"); m {
		id := ids[0]
		switch r.Method {
		case http.MethodGet:
			if a := s.accounts[id]; a != nil {
				ok(w, s.accountObj("account_get", a))
			} else {
				typedErr(w, 404, "ACCOUNT_NOT_FOUND", "account not found")
			}
		case http.MethodPut:
			s.updateAccount(w, r, id)
		case http.MethodDelete:
			// 200 even for unknown ids, as recorded.
			delete(s.accounts, id)
			s.bumpAccounts()
			deleted(w, "Account deleted successfully")
		default:
			notFoundText(w)
		}
		return
	}
	for _, sub := range []string{"models", "clear-error", "schedulable", "clear-rate-limit", "temp-unschedulable"} {
		ids, m := route(rest, "/accounts/:id/"+sub)
		if !m {
			continue
		}
		a := s.accounts[ids[0]]
		if a == nil {
			typedErr(w, 404, "ACCOUNT_NOT_FOUND", "account not found")
			return
		}
		switch {
		case sub == "models" && r.Method == http.MethodGet:
			ok(w, s.accountModels(a))
		case sub == "clear-error" && r.Method == http.MethodPost:
			// 179 restores status only; schedulable stays as it is (§7.4).
			a.status, a.errMsg = "active", ""
			a.updatedAt = s.now()
			s.bumpAccounts()
			ok(w, s.accountObj("account_update", a))
		case sub == "schedulable" && r.Method == http.MethodPost:
			body, err := decodeBody(r)
			v, isBool := body["schedulable"].(bool)
			if err != nil || !isBool {
				bindErr(w, "Key: 'SetSchedulableRequest.Schedulable' Error:Field validation for 'Schedulable' failed on the 'required' tag")
				return
			}
			a.schedulable = v
			a.updatedAt = s.now()
			s.bumpAccounts()
			ok(w, s.accountObj("account_update", a))
		case sub == "clear-rate-limit" && r.Method == http.MethodPost:
			a.rateLimitedAt, a.rateLimitResetAt, a.rateLimitReason = nil, nil, nil
			delete(a.extra, "rate_limit_reason")
			s.bumpAccounts()
			ok(w, s.accountObj("account_update", a))
		case sub == "temp-unschedulable" && r.Method == http.MethodDelete:
			a.tempUnschedUntil, a.tempUnschedReason = nil, ""
			s.bumpAccounts()
			ok(w, map[string]any{"message": "Temp unschedulable state cleared"})
		default:
			notFoundText(w)
		}
		return
	}
	notFoundText(w)
}

func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var as []*account
	for _, a := range s.accounts {
		if p := q.Get("platform"); p != "" && a.platform != p {
			continue
		}
		if t := q.Get("type"); t != "" && a.typ != t {
			continue
		}
		if st := q.Get("status"); st != "" && a.status != st {
			continue
		}
		if sr := q.Get("search"); sr != "" && !strings.Contains(strings.ToLower(a.name), strings.ToLower(sr)) {
			continue
		}
		if g := q.Get("group"); g != "" && !a.boundTo(parseInt(g)) {
			continue
		}
		as = append(as, a)
	}
	// Newest first, like the hosts' default ordering.
	sort.Slice(as, func(i, j int) bool { return as[i].id > as[j].id })
	data := paginateFunc(r, len(as), func(i int) any { return s.accountObj("account_list", as[i]) })
	body, _ := json.Marshal(map[string]any{"code": 0, "message": "success", "data": data})
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:]) + `"`
	w.Header().Set("ETag", etag)
	w.Header().Set("Vary", "If-None-Match")
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", jsonCT)
	w.WriteHeader(200)
	_, _ = w.Write(body)
}

// lastUsedView: 129/179 write last_used_at lazily (null right after
// traffic in the recordings); the fork writes it at once.
func (s *Server) lastUsedView(a *account) any {
	if s.prof.fork {
		return tsPtr(a.lastUsedAt)
	}
	return nil
}

func parseInt(s string) int64 {
	var n int64
	_, _ = fmt.Sscan(s, &n)
	return n
}

func (s *Server) createAccount(w http.ResponseWriter, r *http.Request) {
	req, err := decodeBody(r)
	if err != nil {
		bindErr(w, err.Error())
		return
	}
	var missing []string
	for _, f := range []struct{ key, name string }{{"name", "Name"}, {"platform", "Platform"}, {"type", "Type"}, {"credentials", "Credentials"}} {
		v := req[f.key]
		if v == nil || v == "" {
			missing = append(missing, fmt.Sprintf("Key: 'CreateAccountRequest.%s' Error:Field validation for '%s' failed on the 'required' tag", f.name, f.name))
		}
	}
	creds, _ := req["credentials"].(map[string]any)
	if len(missing) == 0 && creds == nil {
		missing = append(missing, "Key: 'CreateAccountRequest.Credentials' Error:Field validation for 'Credentials' failed on the 'required' tag")
	}
	if len(missing) > 0 {
		bindErr(w, strings.Join(missing, "\n"))
		return
	}
	if s.accountRefusal(str(creds, "base_url")) != "" {
		typedErr(w, 400, "ACCOUNT_INVALID_BASE_URL", forkInvalidBaseURL)
		return
	}
	platform := str(req, "platform")
	gids, _ := ids(req["group_ids"])
	gp := str(req, "gateway_protocol")
	if s.prof.fork {
		if platform == "protocol_gateway" && gp == "" {
			typedErr(w, 400, "ACCOUNT_PROTOCOL_GATEWAY_PROTOCOL_REQUIRED", "protocol_gateway accounts require gateway_protocol")
			return
		}
		for _, gid := range gids {
			g := s.liveGroup(gid)
			if g == nil {
				typedErr(w, 404, "GROUP_NOT_FOUND", "group not found")
				return
			}
			if eff := effectivePlatform(platform, gp); eff != g.platform {
				typedErr(w, 400, "INVALID_GROUP_BINDING", fmt.Sprintf("account platform %s cannot bind group platform %s", eff, g.platform))
				return
			}
		}
	}
	now := s.now()
	a := &account{id: s.newID("account"), name: str(req, "name"), notes: req["notes"], platform: platform, typ: str(req, "type"),
		apiKey: str(creds, "api_key"), baseURL: str(creds, "base_url"), gatewayProtocol: gp,
		status: "active", schedulable: true, rateMult: 1, bindAt: map[int64]time.Time{}, createdAt: now, updatedAt: now}
	if n, has := num(req, "concurrency"); has {
		a.concurrency = int(n)
	}
	if n, has := num(req, "priority"); has {
		a.priority = int(n)
	} else {
		a.priority = 1
	}
	if n, has := num(req, "rate_multiplier"); has && n > 0 {
		a.rateMult = n
	}
	a.credentials = deepCopyMap(creds)
	delete(a.credentials, "api_key")
	reqExtra, _ := req["extra"].(map[string]any)
	s.initExtra(a, reqExtra)
	a.behavior = s.behaviorFor(a)
	s.accounts[a.id] = a
	s.bumpAccounts()
	// 129/179 create the account first and then fail on an unknown group:
	// a 500 with the account left behind, unbound. The orphan is not probed
	// here (the recordings read it back before any probe result).
	for _, gid := range gids {
		if s.liveGroup(gid) == nil {
			if a.extra == nil {
				a.extra = map[string]any{}
			}
			internalErr(w)
			return
		}
	}
	s.startProbe(a)
	for _, gid := range gids {
		a.groupIDs = append(a.groupIDs, gid)
		a.bindAt[gid] = now
	}
	ok(w, s.accountObj("account_create", a))
}

// effectivePlatform is the group platform an account serves.
func effectivePlatform(platform, gatewayProtocol string) string {
	if platform == "protocol_gateway" && gatewayProtocol != "" {
		return gatewayProtocol
	}
	return platform
}

func (s *Server) behaviorFor(a *account) Behavior {
	b := s.opts.Default
	if s.opts.Behavior != nil {
		notes, _ := a.notes.(string)
		if o := s.opts.Behavior(AccountView{ID: a.id, Name: a.name, Notes: notes, Platform: a.platform, APIKey: a.apiKey, BaseURL: a.baseURL}); !o.isZero() {
			b = o
		}
	}
	return b
}

// initExtra computes the stored extra of a new account per profile.
func (s *Server) initExtra(a *account, reqExtra map[string]any) {
	switch {
	case s.prof.fork:
		s.forkInitExtra(a, reqExtra)
	case s.prof.line179 && a.platform == "openai":
		a.extra = map[string]any{"openai_long_context_billing_enabled": false}
		for k, v := range reqExtra {
			a.extra[k] = v
		}
	default:
		if reqExtra != nil {
			a.extra = deepCopyMap(reqExtra)
		}
	}
}

func (s *Server) updateAccount(w http.ResponseWriter, r *http.Request, id int64) {
	a := s.accounts[id]
	if a == nil {
		typedErr(w, 404, "ACCOUNT_NOT_FOUND", "account not found")
		return
	}
	req, err := decodeBody(r)
	if err != nil {
		bindErr(w, err.Error())
		return
	}
	if c, ok := req["credentials"].(map[string]any); ok && s.accountRefusal(str(c, "base_url")) != "" {
		typedErr(w, 400, "ACCOUNT_INVALID_BASE_URL", forkInvalidBaseURL)
		return
	}
	if v, has := req["group_ids"]; has {
		gids, _ := ids(v)
		for _, gid := range gids {
			g := s.liveGroup(gid)
			if g == nil {
				if s.prof.fork {
					typedErr(w, 404, "GROUP_NOT_FOUND", "group not found")
				} else {
					internalErr(w)
				}
				return
			}
			if s.prof.fork && effectivePlatform(a.platform, a.gatewayProtocol) != g.platform {
				typedErr(w, 400, "INVALID_GROUP_BINDING", fmt.Sprintf("account platform %s cannot bind group platform %s", a.platform, g.platform))
				return
			}
		}
		now := s.now()
		old := a.bindAt
		a.groupIDs, a.bindAt = nil, map[int64]time.Time{}
		for _, gid := range gids {
			a.groupIDs = append(a.groupIDs, gid)
			if t, had := old[gid]; had {
				a.bindAt[gid] = t
			} else {
				a.bindAt[gid] = now
			}
		}
	}
	if v := str(req, "name"); v != "" {
		a.name = v
	}
	if v, has := req["notes"]; has {
		a.notes = v
	}
	if creds, has := req["credentials"].(map[string]any); has {
		if k := str(creds, "api_key"); k != "" && k != redacted {
			a.apiKey = k
		}
		a.baseURL = str(creds, "base_url")
		a.credentials = deepCopyMap(creds)
		delete(a.credentials, "api_key")
	}
	if ex, has := req["extra"].(map[string]any); has {
		s.initExtra(a, ex)
	}
	if n, has := num(req, "concurrency"); has {
		a.concurrency = int(n)
	}
	if n, has := num(req, "priority"); has {
		a.priority = int(n)
	}
	switch str(req, "status") {
	case "active":
		a.status, a.errMsg = "active", ""
	case "inactive", "disabled":
		a.status = "disabled"
	case "error":
		a.status = "error"
	}
	if v, has := req["schedulable"].(bool); has {
		a.schedulable = v
	}
	a.updatedAt = s.now()
	s.bumpAccounts()
	ok(w, s.accountObj("account_update", a))
}

// accountModels is GET /accounts/:id/models: the mapping keys in the
// profile's item shape.
func (s *Server) accountModels(a *account) []any {
	mm := a.mapping()
	keys := make([]string, 0, len(mm))
	for k := range mm {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := []any{}
	tmpl := "account_models_item"
	if s.prof.line179 && s.prof.nativeCN[a.platform] {
		tmpl = "account_models_native_item"
	}
	scopeTargets := map[string]string{}
	if sc, ok := a.extra["model_scope_v2"].(map[string]any); ok {
		list, _ := sc["entries"].([]any)
		for _, e := range list {
			if em, ok := e.(map[string]any); ok {
				scopeTargets[str(em, "display_model_id")] = str(em, "target_model_id")
			}
		}
	}
	for _, k := range keys {
		item := overlay(s.prof.tmpl(tmpl), map[string]any{"id": k, "display_name": k})
		if s.prof.fork {
			// The fork reports the scope's target (before registry replacement).
			target := mm[k]
			if t := scopeTargets[k]; t != "" {
				target = t
			}
			vis := "direct"
			if target != k {
				vis = "alias"
			}
			overlay(item, map[string]any{"canonical_id": target, "target_model_id": target, "visibility_mode": vis,
				"provider": providerOf(a, target)})
			if r, deprecated := forkRegistry[target]; deprecated {
				overlay(item, map[string]any{"status": "deprecated", "deprecated_at": "2026-07-24", "replaced_by": r})
			}
		}
		out = append(out, item)
	}
	return out
}
