package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/testpg"
)

// utcMicro is t as both dialects store it: UTC, microsecond precision.
func utcMicro(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func checkTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if got.Location() != time.UTC {
		t.Errorf("%s: location %v, want UTC", what, got.Location())
	}
	if !got.Equal(utcMicro(want)) {
		t.Errorf("%s: got %v, want %v", what, got, utcMicro(want))
	}
}

// rawText reads one column of one row as the text stored in the database.
func rawText(t *testing.T, s *Store, table, col, id string) string {
	t.Helper()
	var v string
	if err := s.DB.NewSelect().TableExpr(table).ColumnExpr(col).Where("id = ?", id).Scan(context.Background(), &v); err != nil {
		t.Fatalf("raw %s.%s: %v", table, col, err)
	}
	return v
}

// JSON in TEXT columns, booleans and timestamps must read back as written on every dialect,
// and the stored text must be plain JSON (not a PostgreSQL array or hstore literal).
func TestJSONBoolAndTimeRoundTrip(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		shanghai := time.FixedZone("UTC+8", 8*3600)
		probed := time.Date(2026, 3, 4, 13, 14, 15, 123456789, shanghai)

		h := &Host{Name: "h1", AdminURL: "http://a", PublicURL: "http://p", AuthKind: "api_key",
			Warnings: []string{"w1", `quote " and 'apostrophe' and \\ backslash`, "中文"},
			Flags:    map[string]bool{"groups_v2": true, "legacy": false},
			ProbedAt: &probed}
		if err := s.CreateHost(ctx, h); err != nil {
			t.Fatal(err)
		}
		gh, err := s.GetHost(ctx, h.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(gh.Warnings, h.Warnings) || !reflect.DeepEqual(gh.Flags, h.Flags) {
			t.Fatalf("host JSON: %#v %#v", gh.Warnings, gh.Flags)
		}
		checkTime(t, "host.probed_at", *gh.ProbedAt, probed)
		checkTime(t, "host.created_at", gh.CreatedAt, h.CreatedAt)
		if raw := rawText(t, s, "hosts", "flags", h.ID); !json.Valid([]byte(raw)) || !strings.HasPrefix(raw, "{") {
			t.Fatalf("hosts.flags stored as %q, want a JSON object", raw)
		}
		if raw := rawText(t, s, "hosts", "warnings", h.ID); !json.Valid([]byte(raw)) || !strings.HasPrefix(raw, "[") {
			t.Fatalf("hosts.warnings stored as %q, want a JSON array", raw)
		}

		deadline := time.Date(2026, 3, 4, 5, 6, 7, 891011000, time.UTC)
		b := &Batch{HostID: h.ID, Mode: "self_service", DryRun: true, Force: false,
			Options: BatchOptions{WindowDeadlineS: 1.5, WindowScheduleS: []float64{0.25, 1, 2}, TopUpAmount: 10, ValidityDays: 30}}
		it := &Item{Name: "i0", BaseURL: "http://u", APIKeyEnc: "v1:x", KeyMasked: "sk-...", KeyFingerprint: "fp",
			RequestedModels: []string{"gpt-4o", "claude"},
			Corrections:     []Correction{{Requested: "gpt4o", Resolved: "gpt-4o", Method: "alias"}},
			Capability:      map[string]any{"stream": true, "n": 3.0, "nested": map[string]any{"list": []any{"a", 1.0}}},
			WindowDeadline:  &deadline}
		if err := s.CreateBatch(ctx, b, []*Item{it}); err != nil {
			t.Fatal(err)
		}
		gb, err := s.GetBatch(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !gb.DryRun || gb.Force || !reflect.DeepEqual(gb.Options, b.Options) {
			t.Fatalf("batch: dry_run=%v force=%v options=%+v", gb.DryRun, gb.Force, gb.Options)
		}
		gi, err := s.GetItem(ctx, it.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(gi.RequestedModels, it.RequestedModels) || !reflect.DeepEqual(gi.Corrections, it.Corrections) ||
			!reflect.DeepEqual(gi.Capability, it.Capability) || gi.Models == nil || len(gi.Models) != 0 ||
			gi.Plan == nil || len(gi.Plan) != 0 || gi.Warnings == nil {
			t.Fatalf("item JSON: %#v", gi)
		}
		checkTime(t, "item.window_deadline", *gi.WindowDeadline, deadline)
		checkTime(t, "item.next_run_at", *gi.NextRunAt, *it.NextRunAt)
		if gi.FinishedAt != nil {
			t.Fatalf("finished_at: %v, want NULL", gi.FinishedAt)
		}

		// An attempt with evidence, times in a non-UTC zone.
		started := time.Date(2026, 1, 2, 3, 4, 5, 6000, shanghai)
		gi.Seq, gi.Status = 1, ItemProbing
		a := &Attempt{Step: "probe", Seq: 0, Number: 1, Outcome: OutcomeOK, StartedAt: started, FinishedAt: started.Add(time.Second),
			Evidence: []Exchange{{Target: "upstream", Method: "GET", Path: "/v1/models", Status: 200, LatencyMS: 12, Preview: `{"data":[]}`, At: started}}}
		if err := s.CompleteStep(ctx, gi, 0, a); err != nil {
			t.Fatal(err)
		}
		atts, err := s.ListAttempts(ctx, it.ID)
		if err != nil || len(atts) != 1 {
			t.Fatalf("attempts: %v %v", atts, err)
		}
		checkTime(t, "attempt.started_at", atts[0].StartedAt, started)
		checkTime(t, "attempt.finished_at", atts[0].FinishedAt, started.Add(time.Second))
		if len(atts[0].Evidence) != 1 || atts[0].Evidence[0].Preview != `{"data":[]}` || !atts[0].Evidence[0].At.Equal(started) {
			t.Fatalf("evidence: %+v", atts[0].Evidence)
		}

		// Ledger details and reconcile findings.
		r, err := s.EnsureIntent(ctx, &Resource{HostID: h.ID, BatchID: b.ID, Type: TypeKey, Name: "crm-key-1",
			Details: map[string]any{"group_ids": []any{1.0, 2.0}, "name": "x"}})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(r.Details, map[string]any{"group_ids": []any{1.0, 2.0}, "name": "x"}) {
			t.Fatalf("details: %#v", r.Details)
		}
		run := &ReconcileRun{ID: NewID(), HostID: h.ID, Status: "done", StartedAt: started,
			Findings: []Finding{{Kind: "missing", ResourceType: TypeKey, HostResourceID: "7", Name: "crm-key-1"}}}
		if _, err := s.DB.NewInsert().Model(run).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		grun := new(ReconcileRun)
		if err := s.DB.NewSelect().Model(grun).Where("id = ?", run.ID).Scan(ctx); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(grun.Findings, run.Findings) || grun.FinishedAt != nil {
			t.Fatalf("reconcile run: %+v", grun)
		}
	})
}

// The column defaults of the migration (BOOLEAN DEFAULT FALSE, '[]', '{}') apply to rows
// written without them and read back through the models.
func TestMigrationDefaults(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		h := &Host{Name: "h", AdminURL: "http://a", PublicURL: "http://p", AuthKind: "api_key"}
		if err := s.CreateHost(ctx, h); err != nil {
			t.Fatal(err)
		}
		id := NewID()
		now := time.Now()
		if _, err := s.DB.ExecContext(ctx, "INSERT INTO batches (id, host_id, mode, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
			id, h.ID, "self_service", BatchQueued, now, now); err != nil {
			t.Fatal(err)
		}
		b, err := s.GetBatch(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if b.DryRun || b.Force || b.ItemCount != 0 || b.Options.WindowScheduleS != nil || b.FinishedAt != nil {
			t.Fatalf("defaults: %+v", b)
		}
		checkTime(t, "created_at", b.CreatedAt, now)
	})
}

func TestNotFound(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if _, err := s.GetBatch(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("batch: %v", err)
		}
		if _, err := s.GetItem(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("item: %v", err)
		}
		if _, err := s.GetHostByName(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("host: %v", err)
		}
		if it, err := s.FindImportedKey(ctx, "h", "fp", "b"); it != nil || err != nil {
			t.Fatalf("imported key: %v %v", it, err)
		}
	})
}

// Paging with ScanAndCount, newest first.
func TestListBatchesPaging(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		h, first, _ := seedBatch(t, s, 1)
		base := time.Now().UTC()
		var ids []string
		for i := 0; i < 4; i++ {
			s.now = func() time.Time { return base.Add(time.Duration(i+1) * time.Minute) }
			b := &Batch{HostID: h.ID, Mode: "self_service"}
			if err := s.CreateBatch(ctx, b, nil); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, b.ID)
		}
		page, total, err := s.ListBatches(ctx, BatchFilter{HostID: h.ID, Limit: 2, Offset: 1})
		if err != nil || total != 5 || len(page) != 2 || page[0].ID != ids[2] || page[1].ID != ids[1] {
			t.Fatalf("page: %d %v %+v", total, err, page)
		}
		page, total, err = s.ListBatches(ctx, BatchFilter{HostID: h.ID, Status: BatchQueued, Limit: 10})
		if err != nil || total != 5 || page[4].ID != first.ID {
			t.Fatalf("all: %d %v %+v", total, err, page)
		}
		if _, total, _ := s.ListBatches(ctx, BatchFilter{Status: BatchFailed}); total != 0 {
			t.Fatalf("failed: %d", total)
		}
	})
}

// CancelBatch (seq = seq + 1, bun.In), DueItems, RetryFailed, FindImportedKey and the
// batch's finished_at (COALESCE keeps the first finish time).
func TestCancelRetryDueAndFinishedAt(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		h, b, items := seedBatch(t, s, 4)
		due, err := s.DueItems(ctx, time.Now().Add(time.Minute), 100)
		if err != nil || len(due) != 4 {
			t.Fatalf("due: %d %v", len(due), err)
		}
		if due, _ := s.DueItems(ctx, time.Now().Add(-time.Hour), 100); len(due) != 0 {
			t.Fatalf("due in the past: %d", len(due))
		}
		// items[0] ready, items[1] failed, 2 and 3 still running.
		for i, st := range []string{ItemReady, ItemFailed} {
			it, _ := s.GetItem(ctx, items[i].ID)
			it.Status, it.Seq, it.NextRunAt = st, 1, nil
			if err := s.CompleteStep(ctx, it, 0, nil); err != nil {
				t.Fatal(err)
			}
		}
		if got, _ := s.ItemsByStatus(ctx, b.ID, ItemReady, ItemFailed); len(got) != 2 {
			t.Fatalf("by status: %d", len(got))
		}
		if got, _ := s.NonTerminalItems(ctx, b.ID); len(got) != 2 || got[0].ID != items[2].ID {
			t.Fatalf("non-terminal: %+v", got)
		}
		if prior, err := s.FindImportedKey(ctx, h.ID, "fp", "other-batch"); err != nil || prior == nil || prior.ID != items[0].ID {
			t.Fatalf("imported key: %+v %v", prior, err)
		}

		finish := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		s.now = func() time.Time { return finish }
		n, err := s.CancelBatch(ctx, b.ID)
		if err != nil || n != 2 {
			t.Fatalf("cancel: %d %v", n, err)
		}
		c, _ := s.GetItem(ctx, items[2].ID)
		if c.Status != ItemCancelled || c.Seq != 1 || c.NextRunAt != nil || c.FinishedAt == nil {
			t.Fatalf("cancelled item: %+v", c)
		}
		if due, _ := s.DueItems(ctx, finish.Add(time.Hour), 100); len(due) != 0 {
			t.Fatalf("due after cancel: %d", len(due))
		}
		gb, _ := s.GetBatch(ctx, b.ID)
		if gb.Status != BatchPartiallySucceeded || gb.FinishedAt == nil {
			t.Fatalf("batch: %s %v", gb.Status, gb.FinishedAt)
		}
		checkTime(t, "batch.finished_at", *gb.FinishedAt, finish)

		s.now = func() time.Time { return finish.Add(time.Hour) }
		if err := s.RefreshBatchStatus(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		gb, _ = s.GetBatch(ctx, b.ID)
		checkTime(t, "batch.finished_at after refresh", *gb.FinishedAt, finish)

		retried, err := s.RetryFailed(ctx, b.ID, "probe")
		if err != nil || len(retried) != 1 || retried[0].ID != items[1].ID || retried[0].Seq != 2 {
			t.Fatalf("retry: %+v %v", retried, err)
		}
		gb, _ = s.GetBatch(ctx, b.ID)
		if gb.Status != BatchRunning || gb.FinishedAt != nil {
			t.Fatalf("batch after retry: %s %v", gb.Status, gb.FinishedAt)
		}
		if due, _ := s.DueItems(ctx, finish.Add(2*time.Hour), 100); len(due) != 1 || due[0].Step != "probe" {
			t.Fatalf("due after retry: %+v", due)
		}
		counts, err := s.StatusCounts(ctx, b.ID)
		if err != nil || !reflect.DeepEqual(counts, map[string]int{ItemReady: 1, ItemSubmitted: 1, ItemCancelled: 2}) {
			t.Fatalf("counts: %v %v", counts, err)
		}
	})
}

// Many workers racing to write the same intent (INSERT ... ON CONFLICT DO NOTHING) all get
// the one row.
func TestEnsureIntentConcurrent(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		h, b, _ := seedBatch(t, s, 1)
		const n = 16
		ids := make([]string, n)
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				r, err := s.EnsureIntent(ctx, &Resource{HostID: h.ID, BatchID: b.ID, Type: TypeUser, Name: "crm-user-x"})
				if err != nil {
					errs <- err
					return
				}
				ids[i] = r.ID
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for _, id := range ids {
			if id != ids[0] {
				t.Fatalf("different rows: %v", ids)
			}
		}
		if _, total, _ := s.ListResources(ctx, ResourceFilter{HostID: h.ID}); total != 1 {
			t.Fatalf("rows: %d", total)
		}
	})
}

// Processes starting together (API + workers) all migrate the same PostgreSQL database;
// none may fail, and the schema is applied once.
func TestPostgresConcurrentMigrate(t *testing.T) {
	dsn := testpg.Start(t)
	ctx := context.Background()
	const n = 4
	stores := make([]*Store, n)
	for i := range stores {
		s, err := Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, s := range stores {
		wg.Add(1)
		go func(s *Store) {
			defer wg.Done()
			errs <- s.Migrate(ctx)
		}(s)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var groups int
	if err := stores[0].DB.NewSelect().TableExpr("bun_migrations").ColumnExpr("COUNT(DISTINCT group_id)").Scan(ctx, &groups); err != nil || groups != 1 {
		t.Fatalf("migration groups: %d %v", groups, err)
	}
	if _, err := stores[1].ListHosts(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestOpenPostgresErrors(t *testing.T) {
	ctx := context.Background()
	// Nothing listens on port 1; the error must not echo the password.
	_, err := Open(ctx, "postgres://crm:s3cret-pw@127.0.0.1:1/x?sslmode=disable&connect_timeout=2")
	if err == nil {
		t.Fatal("open of an unreachable server succeeded")
	}
	if strings.Contains(err.Error(), "s3cret-pw") {
		t.Fatalf("error leaks the password: %v", err)
	}
	_, err = Open(ctx, "postgresql://crm:s3cret-pw@127.0.0.1:5432/x?sslmode=bogus")
	if err == nil || strings.Contains(err.Error(), "s3cret-pw") {
		t.Fatalf("bad sslmode: %v", err)
	}
	// postgresql:// is accepted like postgres://.
	dsn := testpg.Start(t)
	s, err := Open(ctx, "postgresql://"+strings.TrimPrefix(dsn, "postgres://"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Dialect() != DialectPostgres {
		t.Fatalf("dialect %q", s.Dialect())
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestTestPGDatabasesArePrivate(t *testing.T) {
	a, b := testpg.Start(t), testpg.Start(t)
	if a == b {
		t.Fatal(fmt.Sprintf("same DSN twice: %s", a))
	}
}

// The UTC wrapper around the SQLite driver must keep the DSN's pragmas and immediate
// transactions in effect on every pooled connection.
func TestSQLitePragmasKept(t *testing.T) {
	s := openURL(t, dialects[0].url(t))
	ctx := context.Background()
	// The pool holds one connection outside migrations (see sqliteConns); widen it to
	// check that every connection gets the pragmas.
	s.DB.SetMaxOpenConns(3)
	conns := make([]interface{ Close() error }, 0, 3)
	for i := 0; i < 3; i++ {
		c, err := s.DB.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		var mode string
		var fk, busy int
		if err := c.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
			t.Fatalf("journal_mode %q %v", mode, err)
		}
		if err := c.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
			t.Fatalf("foreign_keys %d %v", fk, err)
		}
		if err := c.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busy); err != nil || busy != 10000 {
			t.Fatalf("busy_timeout %d %v", busy, err)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	// A dangling foreign key is rejected.
	_, err := s.DB.ExecContext(ctx, "INSERT INTO batches (id, host_id, mode, status, created_at, updated_at) VALUES ('b', 'no-such-host', 'm', 'queued', ?, ?)", time.Now(), time.Now())
	if err == nil {
		t.Fatal("foreign key not enforced")
	}
}

// A duplicate insert is ErrConflict on both databases, recognised by the driver's error
// code (SQLite's extended result code, PostgreSQL's SQLSTATE), and other failures are not.
func TestUniqueViolationIsErrConflict(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		h, _, _ := seedBatch(t, s, 1)
		run := &ReconcileRun{HostID: h.ID, Slot: "202601010000"}
		if err := s.CreateReconcileRun(ctx, run); err != nil {
			t.Fatal(err)
		}
		again := &ReconcileRun{HostID: h.ID, Slot: "202601010000", Status: RunSkipped}
		if err := s.CreateReconcileRun(ctx, again); !errors.Is(err, ErrConflict) {
			t.Fatalf("second run of one slot: %v, want ErrConflict", err)
		}
		dup := &ReconcileRun{ID: run.ID, HostID: h.ID, Status: RunSkipped}
		if err := s.CreateReconcileRun(ctx, dup); !errors.Is(err, ErrConflict) {
			t.Fatalf("same primary key: %v, want ErrConflict", err)
		}
		if isUniqueViolation(errors.New("UNIQUE constraint failed: duplicate key")) {
			t.Fatal("an error is classified by its text")
		}
	})
}

// The last items of a batch settling at the same moment, in two transactions, finish the
// batch: neither leaves it running because it saw the other item still running.
func TestConcurrentLastItemsFinishTheBatch(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		for round := 0; round < 10; round++ {
			_, b, items := seedBatch(t, s, 2)
			var wg sync.WaitGroup
			errs := make(chan error, len(items))
			for _, it := range items {
				wg.Add(1)
				go func(it *Item) {
					defer wg.Done()
					got, err := s.GetItem(ctx, it.ID)
					if err != nil {
						errs <- err
						return
					}
					seq := got.Seq
					got.Status, got.NextRunAt = ItemReady, nil
					now := time.Now()
					errs <- s.CompleteStep(ctx, got, seq, &Attempt{Step: "access-closure", Seq: seq, Number: 1, Outcome: OutcomeOK, StartedAt: now, FinishedAt: now})
				}(it)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.GetBatch(ctx, b.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != BatchSucceeded || got.FinishedAt == nil {
				t.Fatalf("round %d: batch %s with every item ready, finished_at %v", round, got.Status, got.FinishedAt)
			}
		}
	})
}
