package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cn-relay-manager/cn-relay-manager/internal/catalog"
	"github.com/cn-relay-manager/cn-relay-manager/internal/failure"
	"github.com/cn-relay-manager/cn-relay-manager/internal/host"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// Plan actions of a target group.
const (
	groupCreate   = "create"   // the import creates the group
	groupReuse    = "reuse"    // a group this product made (or found by that name) is reused
	groupExisting = "existing" // the operator's named group: accounts are only added to it
)

// targetGroup is where an item's account goes, as decided before any host write.
type targetGroup struct {
	mode     string // store.GroupPerProvider, GroupExisting or GroupPerItem
	name     string
	id       int64 // host ID when the group exists already
	platform string
	subType  string
	origin   string // ledger origin once recorded (store.Origin*)
	action   string // groupCreate, groupReuse or groupExisting
	// allowlist: the group has an enabled model_allowlist (0.2.3+), which gates models.
	allowlist bool
	// found is the group as planTarget read it from the host in this step: the step
	// does not read it a second time.
	found *host.Group
}

// shared reports whether other accounts (of other items, batches or the operator) may
// serve the group, so that a call through it does not prove which account answered.
func (tg *targetGroup) shared() bool { return tg.mode != store.GroupPerItem }

// errTarget is a target group the import cannot use as asked; the item fails with
// host_rejected and the message says what to change.
type errTarget struct{ msg string }

func (e *errTarget) Error() string { return e.msg }

// poolGroupName is the predictable name of the per_provider group of a key: the provider,
// its region when it is not the provider's first one, its plan (coding, token, …) and
// "-sub" for subscription groups (a group is either balance- or subscription-billed). A
// relay gets its host in the name: keys of two unrelated relays do not serve the same
// models.
func poolGroupName(prefix, provider, defaultRegion string, norm catalog.Normalized, mode string) string {
	var parts []string
	switch provider {
	case catalog.OpenAICompatible, "":
		parts = append(parts, "relay", strings.ReplaceAll(norm.Host, ".", "-"))
	default:
		name := strings.ReplaceAll(provider, "_", "-")
		parts = append(parts, name)
		if norm.Region != "" && norm.Region != defaultRegion {
			parts = append(parts, norm.Region)
		}
		if plan := strings.ReplaceAll(norm.PlanName, "_", "-"); plan != "" && !strings.HasSuffix(name, "-"+plan) {
			parts = append(parts, plan)
		}
	}
	if mode == ModeSubscription {
		parts = append(parts, "sub")
	}
	name := prefix + strings.Join(parts, "-")
	if len(name) > 100 {
		name = name[:100]
	}
	return name
}

// defaultRegion is the region of a provider's first surface: its name carries no region.
func (e *Engine) defaultRegion(provider string) string {
	if p, ok := e.Catalog.Provider(provider); ok && len(p.Surfaces) > 0 {
		return p.Surfaces[0].Region
	}
	return ""
}

// planTarget decides the item's target group and the account spec that can join it,
// reading the host but writing nothing (a dry run stops after it).
func (e *Engine) planTarget(ctx context.Context, sc *stepContext, norm catalog.Normalized, spec host.AccountSpec, mapping map[string]string) (*targetGroup, host.AccountSpec, error) {
	it, b := sc.item, sc.batch
	subType := "standard"
	if b.Mode == ModeSubscription {
		subType = "subscription"
	}
	tg := &targetGroup{mode: b.Options.GroupMode(), platform: spec.GroupPlatform, subType: subType}
	var found *host.Group
	switch tg.mode {
	case store.GroupPerItem:
		tg.name, tg.action = objectName("g", it), groupCreate
		if r, err := e.findResource(ctx, sc, store.TypeGroup, tg.name); err == nil && r.State != store.ResourceDeleted {
			if id, ok := hostID(r); ok {
				tg.id, tg.action = id, groupReuse
			}
		}
		return tg, spec, nil
	case store.GroupExisting:
		want := b.Options.TargetGroup
		var err error
		if want.ID != 0 {
			found, err = sc.client.GetGroup(ctx, want.ID)
			if host.IsNotFound(err) {
				return nil, spec, &errTarget{fmt.Sprintf("the target group with id %d does not exist on the host; pick an existing group (or target per_provider)", want.ID)}
			}
		} else {
			found, err = sc.client.FindGroupByName(ctx, want.Name)
			if err == nil && found == nil {
				return nil, spec, &errTarget{fmt.Sprintf("the target group %q does not exist on the host; create it there first, or target per_provider", want.Name)}
			}
		}
		if err != nil {
			return nil, spec, fmt.Errorf("find target group: %w", err)
		}
		tg.name, tg.id, tg.action, tg.origin = found.Name, found.ID, groupExisting, store.OriginExisting
	default: // per_provider
		tg.name = poolGroupName(b.Options.TargetGroup.Prefix, it.Provider, e.defaultRegion(it.Provider), norm, b.Mode)
		tg.action = groupCreate
		if r, err := e.findResource(ctx, sc, store.TypeGroup, tg.name); err == nil && comparableState(r.State) {
			if id, ok := hostID(r); ok {
				tg.id, tg.action, tg.origin = id, groupReuse, r.Origin
			}
		}
		g, err := sc.client.FindGroupByName(ctx, tg.name)
		if err != nil {
			return nil, spec, fmt.Errorf("find group %s: %w", tg.name, err)
		}
		if g == nil {
			tg.id, tg.action, tg.origin = 0, groupCreate, ""
			break
		}
		found = g
		tg.id, tg.action = g.ID, groupReuse
		if tg.origin == "" {
			tg.origin = groupOrigin(g)
		}
	}
	if found == nil {
		return tg, spec, nil
	}
	tg.found = found
	// A group that exists already decides the platform and the billing; its allowlist
	// (0.2.x) must let the item's models through.
	tg.platform = found.Platform
	tg.allowlist = found.ModelAllowlist != nil && found.ModelAllowlist.Enabled
	onGroup, err := sc.profile.AccountSpecOn(found.Platform, it.Provider, norm.BaseURL, sc.apiKey, mapping)
	if errors.Is(err, host.ErrGroupPlatform) {
		return nil, spec, &errTarget{fmt.Sprintf("group %q: %v", found.Name, err)}
	}
	if found.SubscriptionType != "" && found.SubscriptionType != subType {
		return nil, spec, &errTarget{fmt.Sprintf("group %q is a %s group but access mode %s needs a %s group; pick another group or access mode",
			found.Name, found.SubscriptionType, b.Mode, subType)}
	}
	if !found.Allows(it.SmokeModel) {
		return nil, spec, &errTarget{fmt.Sprintf("group %q has a model_allowlist that does not let %s through; add the item's models to the group's allowlist on the host, or pick another group",
			found.Name, it.SmokeModel)}
	}
	for _, m := range it.Models {
		if !found.Allows(m) {
			it.Warnings = append(it.Warnings, fmt.Sprintf("group %q's model_allowlist refuses %s: end users cannot call it through this group", found.Name, m))
		}
	}
	return tg, onGroup, nil
}

// groupOrigin tells a group this product created (its description carries our
// provenance) from one that was on the host already.
func groupOrigin(g *host.Group) string {
	if strings.HasPrefix(g.Name, ProvenancePrefix) || strings.Contains(g.Description, provenanceTag) {
		return store.OriginCreated
	}
	return store.OriginFound
}

// ensureTargetGroup makes the planned group exist and records it in the ledger (with
// this item's use of it). A pooled group is created once: items racing to create it meet
// 409 GROUP_EXISTS and adopt the winner's; one deleted on the host since is created again.
func (e *Engine) ensureTargetGroup(ctx context.Context, sc *stepContext, tg *targetGroup) (int64, error) {
	if tg.mode == store.GroupPerItem {
		id, err := e.ensureGroup(ctx, sc, tg.platform, tg.subType)
		if err != nil {
			return 0, err
		}
		return id, e.use(ctx, sc, store.TypeGroup, objectName("g", sc.item))
	}
	r, err := e.ensureIntent(ctx, sc, &store.Resource{HostID: sc.host.ID, BatchID: sc.batch.ID, ItemID: sc.item.ID,
		Type: store.TypeGroup, Name: tg.name, Origin: tg.origin})
	if err != nil {
		return 0, err
	}
	g, origin, err := e.liveGroup(ctx, sc, tg, r)
	if err != nil {
		return 0, err
	}
	if tg.mode == store.GroupExisting {
		origin = store.OriginExisting
	}
	state := store.ResourceAdopted
	if origin == store.OriginCreated {
		state = store.ResourceCreated
	}
	if id, ok := hostID(r); !ok || id != g.ID || r.State != state || r.Origin != origin {
		r.Origin = origin
		r.Details = map[string]any{"platform": g.Platform, "subscription_type": g.SubscriptionType, "shared": true}
		if err := e.markCreated(ctx, sc, r, idString(g.ID), state); err != nil {
			return 0, err
		}
	}
	tg.id, tg.origin = g.ID, origin
	return g.ID, e.Store.AddUse(ctx, r.ID, sc.batch.ID, sc.item.ID)
}

// liveGroup returns the host group behind a pooled ledger row: the recorded one when the
// host still has it, else the group of that name, else a new one.
func (e *Engine) liveGroup(ctx context.Context, sc *stepContext, tg *targetGroup, r *store.Resource) (*host.Group, string, error) {
	if id, ok := hostID(r); ok && comparableState(r.State) {
		if tg.found != nil && tg.found.ID == id {
			return tg.found, originOr(r.Origin, groupOrigin(tg.found)), nil
		}
		g, err := sc.client.GetGroup(ctx, id)
		if err == nil {
			return g, originOr(r.Origin, groupOrigin(g)), nil
		}
		if !host.IsNotFound(err) {
			return nil, "", fmt.Errorf("read group %s: %w", tg.name, err)
		}
		if tg.mode == store.GroupExisting {
			return nil, "", &errTarget{fmt.Sprintf("the target group %q was deleted on the host", tg.name)}
		}
	}
	g, err := sc.client.FindGroupByName(ctx, tg.name)
	if err != nil {
		return nil, "", fmt.Errorf("find group %s: %w", tg.name, err)
	}
	if g != nil {
		return g, groupOrigin(g), nil
	}
	if tg.mode == store.GroupExisting {
		return nil, "", &errTarget{fmt.Sprintf("the target group %q does not exist on the host", tg.name)}
	}
	g, err = sc.client.CreateGroup(ctx, host.CreateGroupRequest{Name: tg.name, Platform: tg.platform, SubscriptionType: tg.subType,
		RateMultiplier: 1, Description: fmt.Sprintf("%s: pooled %s keys (created by batch %s)", provenanceTag, tg.platform, sc.batch.ID)})
	if host.IsCode(err, host.CodeGroupExists) {
		// Another item of the batch (or another worker) created it a moment ago.
		if g, err = sc.client.FindGroupByName(ctx, tg.name); err == nil && g == nil {
			err = fmt.Errorf("group %s exists on the host but cannot be found by name", tg.name)
		}
	}
	if err != nil {
		return nil, "", fmt.Errorf("create group %s: %w", tg.name, err)
	}
	return g, groupOrigin(g), nil
}

func originOr(origin, fallback string) string {
	if origin != "" {
		return origin
	}
	return fallback
}

// use records that the item relies on the ledger row (type, name) of its host.
func (e *Engine) use(ctx context.Context, sc *stepContext, typ, name string) error {
	r, err := e.findResource(ctx, sc, typ, name)
	if err != nil {
		return fmt.Errorf("ledger use of %s %s: %w", typ, name, err)
	}
	return e.Store.AddUse(ctx, r.ID, sc.batch.ID, sc.item.ID)
}

// targetFailure turns a target group the import cannot use into the item's failure.
func targetFailure(err error) (result, bool) {
	var et *errTarget
	if !errors.As(err, &et) {
		return result{}, false
	}
	return result{outcome: store.OutcomeFailed, class: failure.HostRejected, status: store.ItemFailed, message: et.msg}, true
}
