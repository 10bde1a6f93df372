package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/uptrace/bun"
)

// EnsureIntent records that a host object named r.Name of type r.Type is about to be
// created, before the host is called (write-ahead). If a row with that name already
// exists (an earlier attempt, or a crash after the create), it is returned instead, so the
// caller can adopt rather than create again.
func (s *Store) EnsureIntent(ctx context.Context, r *Resource) (*Resource, error) {
	now := s.now()
	if r.ID == "" {
		r.ID = NewID()
	}
	r.CreatedAt, r.UpdatedAt = now, now
	if r.State == "" {
		r.State = ResourceIntent
	}
	if r.Details == nil {
		r.Details = map[string]any{}
	}
	// A pooled object (group, user, key) is asked for by every item: read first, so that
	// only the first asker writes.
	if got, err := s.FindResource(ctx, r.HostID, r.Type, r.Name); err == nil {
		return got, nil
	} else if !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("ledger read %s %s: %w", r.Type, r.Name, err)
	}
	res, err := s.DB.NewInsert().Model(r).On("CONFLICT (host_id, resource_type, name) DO NOTHING").Exec(ctx)
	if err != nil {
		return nil, fmt.Errorf("ledger intent %s %s: %w", r.Type, r.Name, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 1 {
		return r, nil // ours: the row is r
	}
	got, err := s.FindResource(ctx, r.HostID, r.Type, r.Name)
	if err != nil {
		return nil, fmt.Errorf("ledger read %s %s: %w", r.Type, r.Name, err)
	}
	return got, nil
}

// TransitionResource is the only way a ledger row changes state: a compare-and-set from
// the state the caller last read (from) to the new one (to), together with the listed
// extra columns taken from r (details, host_resource_id, ...). It reports whether this
// writer won; a writer that lost must re-read the row (GetResource) and decide again, since
// someone else (a rollback, a reconcile, another item) changed it in between. On a win r
// holds the new state; on a loss r.State is left as it was.
func (s *Store) TransitionResource(ctx context.Context, r *Resource, from, to string, columns ...string) (bool, error) {
	prevState, prevUpdated := r.State, r.UpdatedAt
	r.State, r.UpdatedAt = to, s.now()
	cols := append([]string{"state", "updated_at"}, columns...)
	res, err := s.DB.NewUpdate().Model(r).Column(cols...).WherePK().Where("state = ?", from).Exec(ctx)
	if err == nil {
		var n int64
		if n, err = res.RowsAffected(); err == nil && n == 1 {
			return true, nil
		}
	}
	r.State, r.UpdatedAt = prevState, prevUpdated
	if err != nil {
		return false, fmt.Errorf("ledger %s %s %s→%s: %w", r.Type, r.Name, from, to, err)
	}
	return false, nil
}

// GetResource reads one ledger row.
func (s *Store) GetResource(ctx context.Context, id string) (*Resource, error) {
	r := new(Resource)
	err := s.queryRow(ctx, "get resource", func() string {
		return s.DB.NewSelect().Model((*Resource)(nil)).Where("id = ?", s.ph(1)).String()
	}, r, id)
	if err != nil {
		return nil, notFound(err, "ledger row "+id)
	}
	return r, nil
}

// FindResource returns the ledger row of host object (type, name) on a host, or
// ErrNotFound.
func (s *Store) FindResource(ctx context.Context, hostID, typ, name string) (*Resource, error) {
	r := new(Resource)
	// Several times per step (pooled groups, the managed user and its keys): prepared.
	err := s.queryRow(ctx, "find resource", func() string {
		return s.DB.NewSelect().Model((*Resource)(nil)).Where("host_id = ?", s.ph(1)).Where("resource_type = ?", s.ph(2)).
			Where("name = ?", s.ph(3)).String()
	}, r, hostID, typ, name)
	if err != nil {
		return nil, notFound(err, "ledger row "+typ+" "+name)
	}
	return r, nil
}

// maxTransitionTries bounds the re-read-and-decide loop of a writer that keeps losing: a
// row changes state a handful of times in its life, so more means a bug.
const maxTransitionTries = 8

// ErrLedgerContended is returned when a compare-and-set kept losing.
var ErrLedgerContended = errors.New("the ledger row kept changing under a compare-and-set")

// ErrRolledBack is returned by MarkCreated when a rollback deleted, or is deleting, the very
// object the caller wants to record: the row stays the rollback's.
var ErrRolledBack = errors.New("a rollback deleted (or is deleting) this object")

// MarkCreated records the host ID of a ledger row after the host confirmed the object
// (state created, or adopted when the object was found rather than created). It is a
// compare-and-set from the state the caller read (r.State); when another writer changed
// the row in between, it re-reads and decides again: the host has the object, so the row
// must say so, except that
//   - finding an object never relabels a row another writer marked created (rollback
//     deletes created objects and keeps adopted ones: items racing on the managed user, one
//     creating it and one finding it a moment later, must leave created);
//   - a row a rollback claimed (deleting) or finished (deleted) for this same object stays
//     so: the object is being, or was, deleted (ErrRolledBack). A different object under
//     the name (re-created after the rollback's delete) is recorded.
func (s *Store) MarkCreated(ctx context.Context, r *Resource, hostID string, state string) error {
	want := *r
	want.HostResourceID = &hostID
	cur := r // the row as last read
	for try := 0; try < maxTransitionTries; try++ {
		switch {
		case (cur.State == ResourceDeleting || cur.State == ResourceDeleted) && cur.HostResourceID != nil && *cur.HostResourceID == hostID:
			*r = *cur
			return fmt.Errorf("ledger mark %s %s %s: %w", r.Type, r.Name, state, ErrRolledBack)
		case state == ResourceAdopted && cur.State == ResourceCreated:
			*r = *cur
			return nil
		}
		row := want
		if row.Origin == "" || cur.Origin == OriginExisting {
			// An operator's named target group stays theirs whoever records it next.
			row.Origin = cur.Origin
		}
		won, err := s.TransitionResource(ctx, &row, cur.State, state,
			"host_resource_id", "secret_enc", "details", "parent_id", "batch_id", "item_id", "origin")
		if err != nil {
			return fmt.Errorf("ledger mark created: %w", err)
		}
		if won {
			*r = row
			return nil
		}
		if cur, err = s.GetResource(ctx, r.ID); err != nil {
			return fmt.Errorf("ledger mark %s %s: %w", r.Type, r.Name, err)
		}
	}
	return fmt.Errorf("ledger mark %s %s %s: %w", r.Type, r.Name, state, ErrLedgerContended)
}

// ResourceFilter selects ledger rows.
type ResourceFilter struct {
	HostID, BatchID, ItemID, Type, State string
	Limit, Offset                        int
}

func (f ResourceFilter) apply(q *bun.SelectQuery) *bun.SelectQuery {
	for _, c := range []struct{ col, v string }{{"host_id", f.HostID}, {"batch_id", f.BatchID}, {"item_id", f.ItemID},
		{"resource_type", f.Type}, {"state", f.State}} {
		if c.v != "" {
			q = q.Where("? = ?", bun.Ident(c.col), c.v)
		}
	}
	return q
}

// ListResources returns one page of ledger rows (at most f.Limit, default 1000), oldest
// first, and the total. Code that must see every row uses EachResource instead.
func (s *Store) ListResources(ctx context.Context, f ResourceFilter) ([]Resource, int, error) {
	var out []Resource
	q := f.apply(s.DB.NewSelect().Model(&out)).Order("created_at ASC", "id ASC")
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	total, err := q.Limit(int64(f.Limit)).Offset(int64(f.Offset)).ScanAndCount(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("list resources: %w", err)
	}
	return out, int(total), nil
}

// CountResources counts the ledger rows f selects (Limit and Offset are ignored).
func (s *Store) CountResources(ctx context.Context, f ResourceFilter) (int, error) {
	n, err := f.apply(s.DB.NewSelect().Model((*Resource)(nil))).Count(ctx)
	if err != nil {
		return 0, fmt.Errorf("count resources: %w", err)
	}
	return int(n), nil
}

// EachResource streams every ledger row f selects, in pages of f.Limit rows (default
// 1000) ordered by id (keyset pagination: no row limit, no OFFSET scans), calling fn once
// per page. Rows inserted while it runs may or may not be seen; none that existed before
// it started is missed.
func (s *Store) EachResource(ctx context.Context, f ResourceFilter, fn func(page []Resource) error) error {
	size := f.Limit
	if size <= 0 {
		size = 1000
	}
	after := ""
	for {
		var page []Resource
		q := f.apply(s.DB.NewSelect().Model(&page)).Where("id > ?", after).Order("id ASC").Limit(int64(size))
		if err := q.Scan(ctx); err != nil {
			return fmt.Errorf("stream resources: %w", err)
		}
		if len(page) == 0 {
			return nil
		}
		if err := fn(page); err != nil {
			return err
		}
		if len(page) < size {
			return nil
		}
		after = page[len(page)-1].ID
	}
}

// AllResources returns every ledger row f selects (see EachResource).
func (s *Store) AllResources(ctx context.Context, f ResourceFilter) ([]Resource, error) {
	var out []Resource
	err := s.EachResource(ctx, f, func(page []Resource) error {
		out = append(out, page...)
		return nil
	})
	return out, err
}

// ResourceTypeCounts counts the ledger rows f selects per resource type.
func (s *Store) ResourceTypeCounts(ctx context.Context, f ResourceFilter) (map[string]int, error) {
	var rows []struct {
		Type string `bun:"resource_type"`
		N    int    `bun:"n"`
	}
	q := f.apply(s.DB.NewSelect().Model((*Resource)(nil))).Column("resource_type").ColumnExpr("COUNT(*) AS n").Group("resource_type")
	if err := q.Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("count resources by type: %w", err)
	}
	out := make(map[string]int, len(rows))
	for _, r := range rows {
		out[r.Type] = r.N
	}
	return out, nil
}

// ResourcesByID returns the ledger rows with the given ids (missing ids are left out).
func (s *Store) ResourcesByID(ctx context.Context, ids []string) (map[string]*Resource, error) {
	out := make(map[string]*Resource, len(ids))
	const chunk = 500 // SQLite limits bound parameters per statement
	for i := 0; i < len(ids); i += chunk {
		var rows []Resource
		if err := s.DB.NewSelect().Model(&rows).Where("id IN (?)", bun.In(ids[i:min(i+chunk, len(ids))])).Scan(ctx); err != nil {
			return nil, fmt.Errorf("ledger rows by id: %w", err)
		}
		for j := range rows {
			out[rows[j].ID] = &rows[j]
		}
	}
	return out, nil
}
