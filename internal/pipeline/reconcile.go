package pipeline

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/cn-relay-manager/cn-relay-manager/internal/host"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// Finding kinds.
const (
	FindingMissing  = "missing"
	FindingModified = "modified"
	FindingOrphaned = "orphaned"
)

// Reconcile compares the ledger of a host (optionally only one batch) with what the host
// holds and stores the findings in run: objects deleted on the host (missing), changed
// (account in error, unschedulable, group binding lost, key disabled, subscription
// expired) and objects carrying our provenance that the ledger lacks (orphaned). It writes
// nothing to the host.
func (e *Engine) Reconcile(ctx context.Context, run *store.ReconcileRun) error {
	h, client, err := e.clientFor(ctx, run.HostID)
	if err != nil {
		return err
	}
	rows, _, err := e.Store.ListResources(ctx, store.ResourceFilter{HostID: h.ID, BatchID: run.BatchID, Limit: 100000})
	if err != nil {
		return err
	}
	rc := &reconciler{e: e, client: client, run: run}
	known := map[string]bool{}
	for i := range rows {
		r := &rows[i]
		known[r.Type+"|"+r.Name] = true
		if r.State == store.ResourceDeleted || r.State == store.ResourceIntent {
			continue
		}
		if err := rc.check(ctx, r); err != nil {
			return fmt.Errorf("reconcile %s %s: %w", r.Type, r.Name, err)
		}
	}
	if err := rc.orphans(ctx, known); err != nil {
		return err
	}
	run.Status = "completed"
	run.Summary = rc.summary(len(rows))
	return nil
}

type reconciler struct {
	e      *Engine
	client HostClient
	run    *store.ReconcileRun
}

// Modification codes; the repairable ones are handled by Repair.
const (
	CodeAccountError         = "account_error"
	CodeAccountUnschedulable = "account_unschedulable"
	CodeBindingLost          = "binding_lost"
	CodeKeyDisabled          = "key_disabled"
	CodeKeyRebound           = "key_rebound"
	CodeSubscriptionExpired  = "subscription_expired"
)

func (rc *reconciler) modified(code string, r *store.Resource, detail string) {
	rc.add(FindingModified, r, "", detail)
	rc.run.Findings[len(rc.run.Findings)-1].Code = code
}

func (rc *reconciler) add(kind string, r *store.Resource, id, detail string) {
	name, typ := "", ""
	if r != nil {
		name, typ = r.Name, r.Type
		if id == "" && r.HostResourceID != nil {
			id = *r.HostResourceID
		}
	}
	rc.run.Findings = append(rc.run.Findings, store.Finding{Kind: kind, ResourceType: typ, HostResourceID: id, Name: name, Detail: detail})
}

func (rc *reconciler) summary(n int) string {
	if len(rc.run.Findings) == 0 {
		return fmt.Sprintf("in sync: %d ledger object(s) match the host", n)
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
	return fmt.Sprintf("drift: %s (of %d ledger objects)", strings.Join(parts, ", "), n)
}

func (rc *reconciler) check(ctx context.Context, r *store.Resource) error {
	id, ok := hostID(r)
	if !ok {
		return nil
	}
	gone := func(err error) (bool, error) {
		if host.IsNotFound(err) {
			rc.add(FindingMissing, r, "", "deleted on the host")
			if r.State != store.ResourceMissing {
				_ = rc.e.Store.SetResourceState(ctx, r, store.ResourceMissing)
			}
			return true, nil
		}
		return false, err
	}
	switch r.Type {
	case store.TypeGroup:
		if _, err := rc.client.GetGroup(ctx, id); err != nil {
			_, err = gone(err)
			return err
		}
	case store.TypeAccount:
		a, err := rc.client.GetAccount(ctx, id)
		if err != nil {
			_, err = gone(err)
			return err
		}
		if a.Status != "active" {
			rc.modified(CodeAccountError, r, fmt.Sprintf("account status %q: %s", a.Status, truncate(a.ErrorMessage, 160)))
		}
		if !a.Schedulable {
			rc.modified(CodeAccountUnschedulable, r, "account is not schedulable")
		}
		if gid, err := parseID(r.ParentID); err == nil && gid != 0 && !containsID(a.GroupIDs, gid) {
			rc.modified(CodeBindingLost, r, fmt.Sprintf("account is no longer bound to group %d", gid))
		}
	case store.TypeUser:
		if _, err := rc.client.GetUser(ctx, id); err != nil {
			_, err = gone(err)
			return err
		}
	case store.TypeKey:
		return rc.checkKey(ctx, r, id)
	case store.TypeSubscription:
		return rc.checkSubscription(ctx, r, id)
	}
	if r.State == store.ResourceMissing {
		_ = rc.e.Store.SetResourceState(ctx, r, store.ResourceCreated)
	}
	return nil
}

// userOf returns the host id of the managed user owning the host's keys.
func (rc *reconciler) userOf(ctx context.Context) (int64, error) {
	users, _, err := rc.e.Store.ListResources(ctx, store.ResourceFilter{HostID: rc.run.HostID, Type: store.TypeUser})
	if err != nil {
		return 0, err
	}
	for i := range users {
		if id, ok := hostID(&users[i]); ok && users[i].State != store.ResourceDeleted {
			return id, nil
		}
	}
	return 0, nil
}

func (rc *reconciler) checkKey(ctx context.Context, r *store.Resource, id int64) error {
	uid, err := rc.userOf(ctx)
	if err != nil || uid == 0 {
		return err
	}
	keys, err := rc.client.ListUserKeys(ctx, uid)
	if err != nil {
		if host.IsNotFound(err) {
			rc.add(FindingMissing, r, "", "the key's user was deleted on the host")
			return nil
		}
		return err
	}
	for _, k := range keys {
		if k.ID == id {
			if k.Status != "active" {
				rc.modified(CodeKeyDisabled, r, fmt.Sprintf("key status %q", k.Status))
			}
			if gid, err := parseID(r.ParentID); err == nil && gid != 0 && k.GroupID != gid {
				rc.modified(CodeKeyRebound, r, fmt.Sprintf("key is bound to group %d instead of %d", k.GroupID, gid))
			}
			return nil
		}
	}
	rc.add(FindingMissing, r, "", "deleted on the host")
	return nil
}

func (rc *reconciler) checkSubscription(ctx context.Context, r *store.Resource, id int64) error {
	uid, err := rc.userOf(ctx)
	if err != nil || uid == 0 {
		return err
	}
	subs, err := rc.client.ListUserSubscriptions(ctx, uid)
	if err != nil {
		return err
	}
	for _, s := range subs {
		if s.ID == id {
			if s.Status != "active" || (!s.ExpiresAt.IsZero() && s.ExpiresAt.Before(rc.e.now())) {
				rc.modified(CodeSubscriptionExpired, r, fmt.Sprintf("subscription %s (expires %s)", s.Status, s.ExpiresAt.Format("2006-01-02")))
			}
			return nil
		}
	}
	rc.add(FindingMissing, r, "", "revoked on the host")
	return nil
}

// orphans lists host groups and accounts carrying our provenance prefix that the ledger
// lacks. For a batch-scoped run only that batch's names are considered.
func (rc *reconciler) orphans(ctx context.Context, known map[string]bool) error {
	prefix := ProvenancePrefix
	belongs := func(name string) bool {
		if !strings.HasPrefix(name, prefix) {
			return false
		}
		return rc.run.BatchID == "" || strings.Contains(name, "-"+short(rc.run.BatchID)+"-")
	}
	groups, err := rc.client.ListGroups(ctx, prefix)
	if err != nil {
		return fmt.Errorf("list groups: %w", err)
	}
	for _, g := range groups {
		if belongs(g.Name) && !known[store.TypeGroup+"|"+g.Name] {
			rc.run.Findings = append(rc.run.Findings, store.Finding{Kind: FindingOrphaned, ResourceType: store.TypeGroup,
				HostResourceID: idString(g.ID), Name: g.Name, Detail: "carries cn-relay-manager provenance but is not in the ledger"})
		}
	}
	accounts, err := rc.client.ListAccounts(ctx, prefix)
	if err != nil {
		return fmt.Errorf("list accounts: %w", err)
	}
	for _, a := range accounts {
		if belongs(a.Name) && !known[store.TypeAccount+"|"+a.Name] {
			rc.run.Findings = append(rc.run.Findings, store.Finding{Kind: FindingOrphaned, ResourceType: store.TypeAccount,
				HostResourceID: idString(a.ID), Name: a.Name, Detail: "carries cn-relay-manager provenance but is not in the ledger"})
		}
	}
	return nil
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
	rows, _, err := e.Store.ListResources(ctx, store.ResourceFilter{HostID: hostID, Type: store.TypeAccount})
	if err != nil {
		return err
	}
	for _, r := range rows {
		if r.Name != f.Name {
			continue
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
	return fmt.Errorf("the account is not in the ledger")
}

func repairResult(done string, err error) string {
	if err != nil {
		return "failed: " + describe(err)
	}
	return done
}
