package store

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// rawRow reads every column of one row as the database holds it (on SQLite as text: the
// driver would parse a timestamp column back into a time and hide a change of format).
func rawRow(t *testing.T, s *Store, table, id string) map[string]any {
	t.Helper()
	sel := "*"
	if s.Dialect() == DialectSQLite {
		var names []string
		if err := s.DB.NewRaw(fmt.Sprintf(`SELECT name FROM pragma_table_info('%s')`, table)).Scan(context.Background(), &names); err != nil {
			t.Fatal(err)
		}
		sel = ""
		for i, n := range names {
			if i > 0 {
				sel += ", "
			}
			sel += fmt.Sprintf(`CAST("%s" AS TEXT) AS "%s"`, n, n)
		}
	}
	rows, err := s.DB.DB.QueryContext(context.Background(), fmt.Sprintf(`SELECT %s FROM %s WHERE id = '%s'`, sel, table, id))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		t.Fatalf("%s %s: no row", table, id)
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	for i, c := range cols {
		if b, ok := vals[i].([]byte); ok {
			vals[i] = string(b)
		}
		out[c] = vals[i]
	}
	return out
}

// TestPreparedWritesAsBunDoes writes the same step result twice, once through
// CompleteStep's prepared statements and once through bun's own update and insert, and
// requires the database to hold the same values: times in bun's text form (the columns
// are compared as text on SQLite), JSON columns as bun's JSON, NULLs where bun writes
// NULL. If bun's way of writing a value changes, this test says so.
func TestPreparedWritesAsBunDoes(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		_, _, items := seedBatch(t, s, 2)
		deadline := time.Date(2026, 12, 7, 4, 5, 6, 789_000_000, time.UTC)
		step := func(it *Item) {
			it.Seq, it.Step, it.Status, it.StepAttempts = 1, "account_probe", ItemConfirming, 2
			it.NormalizedURL, it.Provider, it.SmokeModel = "https://api.deepseek.com", "deepseek", "deepseek-chat"
			it.Models = []string{"deepseek-chat", "deepseek-reasoner"}
			it.Corrections = []Correction{{Requested: "deepseek-v3", Resolved: "deepseek-chat", Method: "alias"}}
			it.Capability = map[string]any{"openai": true, "n": 2.5, "nested": map[string]any{"ok": "it's"}}
			it.Plan = map[string]any{"group": "crm-deepseek"}
			it.Warnings = []string{"w1"}
			it.WindowDeadline, it.NextRunAt = &deadline, nil
			it.FailureMessage = "quote ' and unicode 中文"
		}
		a, b := items[0], items[1]
		step(a)
		if err := s.CompleteStep(ctx, a, 0, &Attempt{Step: "import", Seq: 0, Number: 1, Outcome: OutcomeOK, Message: "m",
			Evidence:  []Exchange{{Target: "host", Method: "POST", Path: "/x", Status: 200, LatencyMS: 12, Preview: `{"a":1}`, At: deadline}},
			StartedAt: deadline, FinishedAt: deadline.Add(time.Millisecond)}); err != nil {
			t.Fatal(err)
		}
		// The reference: what bun writes for the same values.
		step(b)
		b.UpdatedAt, b.AttemptCount = a.UpdatedAt, a.AttemptCount
		if _, err := s.DB.NewUpdate().Model(b).ExcludeColumn("id", "batch_id", "host_id", "idx", "name", "base_url", "api_key_enc",
			"key_masked", "key_fingerprint", "created_at").WherePK().Exec(ctx); err != nil {
			t.Fatal(err)
		}
		ra, rb := rawRow(t, s, "items", a.ID), rawRow(t, s, "items", b.ID)
		for _, c := range []string{"id", "idx", "name", "created_at"} {
			delete(ra, c)
			delete(rb, c)
		}
		if !reflect.DeepEqual(ra, rb) {
			for c := range ra {
				if !reflect.DeepEqual(ra[c], rb[c]) {
					t.Errorf("items.%s: prepared wrote %#v, bun writes %#v", c, ra[c], rb[c])
				}
			}
		}
		atts, err := s.ListAttempts(ctx, a.ID)
		if err != nil || len(atts) != 1 {
			t.Fatalf("attempts %v %v", atts, err)
		}
		ref := atts[0]
		ref.ID, ref.ItemID = NewID(), b.ID
		if _, err := s.DB.NewInsert().Model(&ref).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		pa, pb := rawRow(t, s, "attempts", atts[0].ID), rawRow(t, s, "attempts", ref.ID)
		for _, c := range []string{"id", "item_id"} {
			delete(pa, c)
			delete(pb, c)
		}
		if !reflect.DeepEqual(pa, pb) {
			t.Errorf("attempt: prepared wrote %#v, bun writes %#v", pa, pb)
		}
		// And what is read back is what was written.
		got, err := s.GetItem(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.WindowDeadline == nil || !got.WindowDeadline.Equal(deadline) || got.Capability["nested"].(map[string]any)["ok"] != "it's" ||
			got.FailureMessage != a.FailureMessage || !reflect.DeepEqual(got.Corrections, a.Corrections) {
			t.Errorf("read back %+v", got)
		}
		// A second delivery of the same step is stale.
		if err := s.CompleteStep(ctx, a, 0, nil); err == nil {
			t.Error("CompleteStep at a past sequence succeeded")
		}
	})
}
