package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/host"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// Finding kinds.
const (
	FindingMissing  = "missing"
	FindingModified = "modified"
	FindingOrphaned = "orphaned"
)

// Modification codes; the repairable ones are handled by Repair.
const (
	CodeAccountError         = "account_error"
	CodeAccountUnschedulable = "account_unschedulable"
	CodeBindingLost          = "binding_lost"
	CodeKeyDisabled          = "key_disabled"
	CodeKeyRebound           = "key_rebound"
	CodeSubscriptionExpired  = "subscription_expired"
)

// ledgerPage is how many ledger rows a reconcile reads and compares at a time.
const ledgerPage = 1000

// progressEvery bounds how often a running reconcile stores its progress and heartbeat.
const progressEvery = 2 * time.Second

// Reconcile compares the ledger of a host (optionally only one batch) with what the host
// holds and stores the findings in run: objects deleted on the host (missing), changed
// (account in error, unschedulable, group binding lost, key disabled, subscription
// expired) and objects carrying our provenance that the ledger lacks (orphaned). It writes
// nothing to the host.
//
// It reads the host with a few paged list calls (groups, accounts, the managed users,
// their keys and subscriptions; the largest page the host allows) instead of one call per
// object, and streams the ledger in pages. It never reports an object that an import,
// retry or rollback of the host is changing (docs/architecture.md, "Reconcile and
// concurrent operations"):
//
//  1. The host is listed first and the ledger read after. The ledger is write-ahead (an
//     intent row exists before the host create), so every object of ours in the listing
//     already has its row: nothing created meanwhile looks orphaned.
//  2. Rows an operation owns right now are not compared: deleting (a rollback deletes the
//     object) and rows of items that have not finished (an import or retry is working on
//     them, intents included). Intents of finished items were never confirmed created.
//  3. An object the listing lacks (created after it, or skipped by a page shifting under
//     concurrent deletes) is confirmed with a single GET, or one fresh list for keys and
//     subscriptions, before it counts as missing; the row is then marked missing by a
//     compare-and-set from the state read, which a concurrent rollback (it marks its rows
//     deleting before deleting) always wins.
//  4. Before the run is stored every finding's row, and its item, is read again; findings
//     whose row changed since it was compared are dropped.
func (e *Engine) Reconcile(ctx context.Context, run *store.ReconcileRun) error {
	h, client, err := e.clientFor(ctx, run.HostID)
	if err != nil {
		return err
	}
	scope := store.ResourceFilter{HostID: h.ID, BatchID: run.BatchID}
	types, err := e.Store.ResourceTypeCounts(ctx, scope)
	if err != nil {
		return err
	}
	total := 0
	for _, n := range types {
		total += n
	}
	run.Findings, run.ObjectsChecked, run.ObjectsTotal = nil, 0, total
	rc := &reconciler{e: e, client: client, run: run, hostID: h.ID, names: map[string]bool{}}
	rc.beat(ctx, true)
	if err := rc.listHost(ctx, types); err != nil {
		return err
	}
	scope.Limit = ledgerPage
	if err := e.Store.EachResource(ctx, scope, func(page []store.Resource) error { return rc.comparePage(ctx, page) }); err != nil {
		return err
	}
	if err := rc.confirm(ctx); err != nil {
		return err
	}
	if err := rc.orphans(ctx); err != nil {
		return err
	}
	if err := rc.settle(ctx); err != nil {
		return err
	}
	run.ObjectsChecked, run.ObjectsTotal = rc.checked, max(total, rc.checked)
	run.Status = store.RunCompleted
	run.Summary = rc.summary()
	return nil
}

// hostView is what the host listed, by host id.
type hostView struct {
	groups   map[int64]host.Group
	accounts map[int64]host.Account
	users    map[int64]host.User
	keys     map[int64]host.APIKey
	subs     map[int64]host.Subscription
	// userIDs are the managed users whose keys and subscriptions were listed; goneUsers
	// those of them the host no longer has.
	userIDs   []int64
	goneUsers map[int64]bool
}

type reconciler struct {
	e      *Engine
	client HostClient
	run    *store.ReconcileRun
	hostID string
	view   hostView
	listed struct {
		groups   []host.Group
		accounts []host.Account
	} // provenance-named objects, for orphans
	names    map[string]bool  // type|name of every ledger row read
	suspects []store.Resource // rows whose object the listing lacks
	pending  []pending
	checked  int
	inFlight int
	lastBeat time.Time
}

// pending is a finding not reported yet: it stands only if its row still is as compared.
type pending struct {
	finding store.Finding
	rowID   string // "" for orphans (no row)
	state   string
	updated time.Time
}

// beat stores the run's progress and heartbeat, at most every progressEvery unless forced.
func (rc *reconciler) beat(ctx context.Context, force bool) {
	if !force && time.Since(rc.lastBeat) < progressEvery {
		return
	}
	rc.lastBeat = time.Now()
	rc.run.ObjectsChecked = rc.checked
	// Progress is informative; a failed write of it must not fail the comparison (the
	// final write of the run reports any real database trouble).
	_ = rc.e.Store.ReconcileProgress(ctx, rc.run)
}

// listHost reads the host's side: provenance-named groups and accounts, the managed
// users, and their keys and subscriptions when the ledger in scope holds any.
func (rc *reconciler) listHost(ctx context.Context, types map[string]int) error {
	v := hostView{groups: map[int64]host.Group{}, accounts: map[int64]host.Account{}, users: map[int64]host.User{},
		keys: map[int64]host.APIKey{}, subs: map[int64]host.Subscription{}, goneUsers: map[int64]bool{}}
	// Every group: pooled groups carry plain names (deepseek, kimi-coding), and a host has
	// few groups.
	groups, err := rc.client.ListGroups(ctx, "")
	if err != nil {
		return fmt.Errorf("list groups: %w", err)
	}
	for _, g := range groups {
		v.groups[g.ID] = g
		if carriesProvenance(g.Name) || strings.Contains(g.Description, provenanceTag) {
			rc.listed.groups = append(rc.listed.groups, g)
		}
	}
	// Accounts by our tag: the provenance name, or the crm-<batch>-<item> tag that ends
	// the operator-facing name of a pooled account. Accounts the operator added by hand to
	// one of our groups are neither listed nor orphans.
	accounts, err := rc.client.ListAccounts(ctx, ProvenancePrefix)
	if err != nil {
		return fmt.Errorf("list accounts: %w", err)
	}
	for _, a := range accounts {
		v.accounts[a.ID] = a
		if carriesProvenance(a.Name) {
			rc.listed.accounts = append(rc.listed.accounts, a)
		}
	}
	if types[store.TypeUser]+types[store.TypeKey]+types[store.TypeSubscription] > 0 {
		// Keys and subscriptions belong to the host's managed user(s), whichever batch
		// recorded the user row.
		users, err := rc.e.Store.AllResources(ctx, store.ResourceFilter{HostID: rc.hostID, Type: store.TypeUser})
		if err != nil {
			return err
		}
		emails := map[string]bool{}
		for i := range users {
			u := &users[i]
			id, ok := hostID(u)
			if !ok || !comparableState(u.State) {
				continue
			}
			if !emails[u.Name] {
				emails[u.Name] = true
				found, err := rc.client.FindUserByEmail(ctx, u.Name)
				if err != nil {
					return fmt.Errorf("list users: %w", err)
				}
				if found != nil {
					v.users[found.ID] = *found
				}
			}
			if !containsID(v.userIDs, id) {
				v.userIDs = append(v.userIDs, id)
			}
		}
		if err := rc.listAccess(ctx, &v, types[store.TypeKey] > 0, types[store.TypeSubscription] > 0); err != nil {
			return err
		}
	}
	rc.view = v
	rc.beat(ctx, true)
	return nil
}

// listAccess lists the keys and subscriptions of the managed users into v.
func (rc *reconciler) listAccess(ctx context.Context, v *hostView, keys, subs bool) error {
	for _, uid := range v.userIDs {
		if keys {
			ks, err := rc.client.ListUserKeys(ctx, uid)
			switch {
			case host.IsNotFound(err):
				v.goneUsers[uid] = true
			case err != nil:
				return fmt.Errorf("list keys of user %d: %w", uid, err)
			}
			for _, k := range ks {
				v.keys[k.ID] = k
			}
		}
		if subs {
			ss, err := rc.client.ListUserSubscriptions(ctx, uid)
			switch {
			case host.IsNotFound(err):
				v.goneUsers[uid] = true
			case err != nil:
				return fmt.Errorf("list subscriptions of user %d: %w", uid, err)
			}
			for _, s := range ss {
				v.subs[s.ID] = s
			}
		}
	}
	return nil
}

// comparableState reports whether a row in state describes an object that should be on the
// host and that no operation owns right now.
func comparableState(state string) bool {
	return state == store.ResourceCreated || state == store.ResourceAdopted || state == store.ResourceMissing
}

func inFlight(itemStatus string) bool { return itemStatus != "" && !store.IsTerminal(itemStatus) }

// comparePage compares one page of ledger rows with the listing.
func (rc *reconciler) comparePage(ctx context.Context, page []store.Resource) error {
	var itemIDs []string
	for i := range page {
		if page[i].ItemID != "" {
			itemIDs = append(itemIDs, page[i].ItemID)
		}
	}
	statuses, err := rc.e.Store.ItemStatuses(ctx, itemIDs)
	if err != nil {
		return err
	}
	for i := range page {
		r := &page[i]
		rc.checked++
		rc.names[r.Type+"|"+r.Name] = true
		switch {
		case r.State == store.ResourceDeleting || (r.State != store.ResourceDeleted && inFlight(statuses[r.ItemID])):
			rc.inFlight++ // an operation owns it right now: compared by the next run
			continue
		case !comparableState(r.State):
			continue // deleted, or an intent whose item ended before the host confirmed it
		}
		id, ok := hostID(r)
		if !ok {
			continue
		}
		found, err := rc.compare(ctx, r, id)
		if err != nil {
			return fmt.Errorf("reconcile %s %s: %w", r.Type, r.Name, err)
		}
		if !found {
			rc.suspects = append(rc.suspects, *r)
		}
	}
	rc.beat(ctx, false)
	return nil
}

// compare checks a row against the listing; false means the listing lacks the object.
func (rc *reconciler) compare(ctx context.Context, r *store.Resource, id int64) (bool, error) {
	v := &rc.view
	switch r.Type {
	case store.TypeGroup:
		if _, ok := v.groups[id]; !ok {
			return false, nil
		}
	case store.TypeAccount:
		a, ok := v.accounts[id]
		if !ok {
			return false, nil
		}
		rc.checkAccount(r, &a)
	case store.TypeUser:
		if _, ok := v.users[id]; !ok {
			return false, nil
		}
	case store.TypeKey:
		if len(v.userIDs) == 0 {
			return true, nil // no managed user recorded: nothing to compare the key with
		}
		k, ok := v.keys[id]
		if !ok {
			return false, nil
		}
		rc.checkKey(r, &k)
	case store.TypeSubscription:
		if len(v.userIDs) == 0 {
			return true, nil
		}
		s, ok := v.subs[id]
		if !ok {
			return false, nil
		}
		rc.checkSubscription(r, &s)
	default:
		return true, nil
	}
	return true, rc.present(ctx, r)
}

// missingFrom is the detail key that remembers a missing row's state before, so that
// finding the object again restores it (an adopted object must stay adopted: rollback
// keeps those).
const missingFrom = "missing_from"

// present records that the host has a row's object: a row marked missing earlier goes
// back to its state before (compare-and-set; a row someone changed meanwhile is theirs).
func (rc *reconciler) present(ctx context.Context, r *store.Resource) error {
	if r.State != store.ResourceMissing {
		return nil
	}
	upd := *r
	upd.Details = copyDetails(r.Details)
	to, _ := upd.Details[missingFrom].(string)
	if to != store.ResourceAdopted {
		to = store.ResourceCreated
	}
	delete(upd.Details, missingFrom)
	_, err := rc.e.Store.TransitionResource(ctx, &upd, store.ResourceMissing, to, "details")
	return err
}

// missing reports a row whose object the host confirmed gone, marking the row missing by
// a compare-and-set from the state compared; when the row changed meanwhile (a rollback
// is deleting it, an import re-created it) that operation owns it and nothing is reported.
func (rc *reconciler) missing(ctx context.Context, r *store.Resource, detail string) error {
	if r.State == store.ResourceMissing {
		rc.report(FindingMissing, "", r, detail)
		return nil
	}
	upd := *r
	upd.Details = copyDetails(r.Details)
	upd.Details[missingFrom] = r.State
	won, err := rc.e.Store.TransitionResource(ctx, &upd, r.State, store.ResourceMissing, "details")
	if err != nil || !won {
		return err
	}
	rc.report(FindingMissing, "", &upd, detail)
	return nil
}

func copyDetails(d map[string]any) map[string]any {
	out := make(map[string]any, len(d)+1)
	for k, v := range d {
		out[k] = v
	}
	return out
}

// report queues a finding about row r (as compared or as just written).
func (rc *reconciler) report(kind, code string, r *store.Resource, detail string) {
	id := ""
	if r.HostResourceID != nil {
		id = *r.HostResourceID
	}
	rc.pending = append(rc.pending, pending{rowID: r.ID, state: r.State, updated: r.UpdatedAt,
		finding: store.Finding{Kind: kind, Code: code, ResourceType: r.Type, HostResourceID: id, Name: r.Name, Detail: detail}})
}

func (rc *reconciler) modified(code string, r *store.Resource, detail string) {
	rc.report(FindingModified, code, r, detail)
}

func (rc *reconciler) checkAccount(r *store.Resource, a *host.Account) {
	if a.Status != "active" {
		rc.modified(CodeAccountError, r, fmt.Sprintf("account status %q: %s", a.Status, truncate(a.ErrorMessage, 160)))
	}
	if !a.Schedulable {
		rc.modified(CodeAccountUnschedulable, r, "account is not schedulable")
	}
	if gid, err := parseID(r.ParentID); err == nil && gid != 0 && !containsID(a.GroupIDs, gid) {
		rc.modified(CodeBindingLost, r, fmt.Sprintf("account is no longer bound to group %d", gid))
	}
}

func (rc *reconciler) checkKey(r *store.Resource, k *host.APIKey) {
	if k.Status != "active" {
		rc.modified(CodeKeyDisabled, r, fmt.Sprintf("key status %q", k.Status))
	}
	if gid, err := parseID(r.ParentID); err == nil && gid != 0 && k.GroupID != gid {
		rc.modified(CodeKeyRebound, r, fmt.Sprintf("key is bound to group %d instead of %d", k.GroupID, gid))
	}
}

func (rc *reconciler) checkSubscription(r *store.Resource, s *host.Subscription) {
	if s.Status != "active" || (!s.ExpiresAt.IsZero() && s.ExpiresAt.Before(rc.e.now())) {
		rc.modified(CodeSubscriptionExpired, r, fmt.Sprintf("subscription %s (expires %s)", s.Status, s.ExpiresAt.Format("2006-01-02")))
	}
}

// confirm settles the rows whose object the listing lacked: one GET per group, account or
// user (one fresh list per managed user for keys and subscriptions) tells a real deletion
// from an object created after the listing or skipped by a shifting page.
func (rc *reconciler) confirm(ctx context.Context) error {
	var access []*store.Resource
	for i := range rc.suspects {
		r := &rc.suspects[i]
		id, _ := hostID(r)
		var err error
		switch r.Type {
		case store.TypeGroup:
			_, err = rc.client.GetGroup(ctx, id)
		case store.TypeAccount:
			var a *host.Account
			if a, err = rc.client.GetAccount(ctx, id); err == nil {
				rc.checkAccount(r, a)
			}
		case store.TypeUser:
			_, err = rc.client.GetUser(ctx, id)
		default:
			access = append(access, r)
			continue
		}
		switch {
		case err == nil:
			err = rc.present(ctx, r)
		case host.IsNotFound(err):
			err = rc.missing(ctx, r, "deleted on the host")
		}
		if err != nil {
			return fmt.Errorf("reconcile %s %s: %w", r.Type, r.Name, err)
		}
		rc.beat(ctx, false)
	}
	if len(access) == 0 {
		return nil
	}
	fresh := hostView{keys: map[int64]host.APIKey{}, subs: map[int64]host.Subscription{}, goneUsers: map[int64]bool{}, userIDs: rc.view.userIDs}
	var keys, subs bool
	for _, r := range access {
		keys = keys || r.Type == store.TypeKey
		subs = subs || r.Type == store.TypeSubscription
	}
	if err := rc.listAccess(ctx, &fresh, keys, subs); err != nil {
		return err
	}
	allGone := len(fresh.goneUsers) == len(fresh.userIDs)
	for _, r := range access {
		id, _ := hostID(r)
		var err error
		switch r.Type {
		case store.TypeKey:
			if k, ok := fresh.keys[id]; ok {
				rc.checkKey(r, &k)
				err = rc.present(ctx, r)
			} else if allGone {
				err = rc.missing(ctx, r, "the key's user was deleted on the host")
			} else {
				err = rc.missing(ctx, r, "deleted on the host")
			}
		case store.TypeSubscription:
			if s, ok := fresh.subs[id]; ok {
				rc.checkSubscription(r, &s)
				err = rc.present(ctx, r)
			} else {
				err = rc.missing(ctx, r, "revoked on the host")
			}
		}
		if err != nil {
			return fmt.Errorf("reconcile %s %s: %w", r.Type, r.Name, err)
		}
	}
	return nil
}

// orphans reports listed groups and accounts carrying our provenance prefix that the
// ledger lacks. For a batch-scoped run only that batch's names are considered. A name the
// streamed ledger did not hold is looked up once more before it counts.
func (rc *reconciler) orphans(ctx context.Context) error {
	belongs := func(name string) bool {
		return rc.run.BatchID == "" || strings.Contains(name, "-"+short(rc.run.BatchID)+"-")
	}
	orphan := func(typ, name string, id int64) error {
		if !belongs(name) || rc.names[typ+"|"+name] {
			return nil
		}
		_, err := rc.e.Store.FindResource(ctx, rc.hostID, typ, name)
		switch {
		case err == nil:
			return nil
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		rc.pending = append(rc.pending, pending{finding: store.Finding{Kind: FindingOrphaned, ResourceType: typ,
			HostResourceID: idString(id), Name: name, Detail: "carries cn-relay-manager provenance but is not in the ledger"}})
		return nil
	}
	for _, g := range rc.listed.groups {
		if err := orphan(store.TypeGroup, g.Name, g.ID); err != nil {
			return err
		}
	}
	for _, a := range rc.listed.accounts {
		if err := orphan(store.TypeAccount, a.Name, a.ID); err != nil {
			return err
		}
	}
	return nil
}

// settle reads every finding's row (and item) again and keeps only the findings whose
// row is still as compared: a row an operation changed meanwhile, or whose item was
// retried, belongs to that operation, and the next run compares it afresh.
func (rc *reconciler) settle(ctx context.Context) error {
	var ids []string
	for _, p := range rc.pending {
		if p.rowID != "" {
			ids = append(ids, p.rowID)
		}
	}
	rows, err := rc.e.Store.ResourcesByID(ctx, ids)
	if err != nil {
		return err
	}
	var itemIDs []string
	for _, r := range rows {
		if r.ItemID != "" {
			itemIDs = append(itemIDs, r.ItemID)
		}
	}
	statuses, err := rc.e.Store.ItemStatuses(ctx, itemIDs)
	if err != nil {
		return err
	}
	rc.run.Findings = []store.Finding{}
	for _, p := range rc.pending {
		if p.rowID != "" {
			r := rows[p.rowID]
			if r == nil || r.State != p.state || !sameInstant(r.UpdatedAt, p.updated) || inFlight(statuses[r.ItemID]) {
				continue
			}
		}
		rc.run.Findings = append(rc.run.Findings, p.finding)
	}
	return nil
}

// sameInstant compares timestamps at the precision both databases store (microseconds).
func sameInstant(a, b time.Time) bool {
	return a.Truncate(time.Microsecond).Equal(b.Truncate(time.Microsecond))
}

func (rc *reconciler) summary() string {
	n := rc.run.ObjectsTotal
	var note string
	if rc.inFlight > 0 {
		note = fmt.Sprintf("; %d in flight (being imported, retried or rolled back), compared next time", rc.inFlight)
	}
	if len(rc.run.Findings) == 0 {
		return fmt.Sprintf("in sync: %d ledger object(s) match the host%s", n, note)
	}
	counts := map[string]int{}
	for _, f := range rc.run.Findings {
		counts[f.Kind]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
	}
	return fmt.Sprintf("drift: %s (of %d ledger objects)%s", strings.Join(parts, ", "), n, note)
}

// Repair applies the safe fixes to a finished reconcile run's findings, on explicit
// operator request: clear an account's error (and make it schedulable again where the
// host needs that), make an account schedulable, re-bind an account to its group. Every
// finding records what was done; missing and orphaned objects are never touched.
func (e *Engine) Repair(ctx context.Context, run *store.ReconcileRun) error {
	h, client, err := e.clientFor(ctx, run.HostID)
	if err != nil {
		return err
	}
	prof, ok := host.ProfileByName(h.Profile)
	if !ok {
		prof, _ = host.ProfileByName(host.Profile179)
	}
	for i := range run.Findings {
		f := &run.Findings[i]
		if f.Kind != FindingModified || f.Repair != "" {
			continue
		}
		id, err := parseID(f.HostResourceID)
		if err != nil || id == 0 {
			f.Repair = "not repairable: no host id"
			continue
		}
		switch f.Code {
		case CodeAccountError:
			if _, err = client.ClearAccountError(ctx, id); err == nil && prof.ClearErrorNeedsSchedulable {
				_, err = client.SetSchedulable(ctx, id, true)
			}
			f.Repair = repairResult("cleared the account error", err)
		case CodeAccountUnschedulable:
			_, err = client.SetSchedulable(ctx, id, true)
			f.Repair = repairResult("made the account schedulable", err)
		case CodeBindingLost:
			f.Repair = repairResult("re-bound the account to its group", e.rebind(ctx, client, run.HostID, f, id))
		default:
			f.Repair = "not repairable automatically: " + f.Detail
		}
	}
	run.Summary += "; repair applied"
	return nil
}

func (e *Engine) rebind(ctx context.Context, client HostClient, hostID string, f *store.Finding, accountID int64) error {
	r, err := e.Store.FindResource(ctx, hostID, store.TypeAccount, f.Name)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("the account is not in the ledger")
	}
	if err != nil {
		return err
	}
	gid, err := parseID(r.ParentID)
	if err != nil || gid == 0 {
		return fmt.Errorf("the ledger does not record the account's group")
	}
	acc, err := client.GetAccount(ctx, accountID)
	if err != nil {
		return err
	}
	ids := append(append([]int64{}, acc.GroupIDs...), gid)
	_, err = client.UpdateAccount(ctx, accountID, host.UpdateAccountRequest{GroupIDs: &ids})
	return err
}

func repairResult(done string, err error) string {
	if err != nil {
		return "failed: " + describe(err)
	}
	return done
}
