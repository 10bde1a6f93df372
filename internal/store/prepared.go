package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/schema"
)

// bun writes every argument into the SQL text, so the database parses and plans each
// query afresh: in the worker's profile that parse was a third of SQLite's time. The
// few statements a pipeline step runs every time are prepared instead: their text is
// built once with bun (so the column lists stay bun's), with placeholders where the
// arguments go, and database/sql keeps them prepared per connection (SQLite has one;
// on PostgreSQL a statement is prepared on each pooled connection it meets).

// stmts caches the prepared statements of a Store, by name.
type stmts struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// ph is the nth placeholder (from 1) of the store's dialect, for building a prepared
// statement's text with bun: bun copies a bun.Safe argument into the text as it is.
func (s *Store) ph(n int) bun.Safe {
	if s.dialect == DialectPostgres {
		return bun.Safe(fmt.Sprintf("$%d", n))
	}
	return bun.Safe("?")
}

// prepared returns the statement named name, preparing the text build returns the first
// time it is asked for.
func (s *Store) prepared(ctx context.Context, name string, build func() string) (*sql.Stmt, error) {
	s.stmts.mu.Lock()
	defer s.stmts.mu.Unlock()
	if st, ok := s.stmts.m[name]; ok {
		return st, nil
	}
	st, err := s.DB.DB.PrepareContext(ctx, build())
	if err != nil {
		return nil, fmt.Errorf("prepare %s: %w", name, err)
	}
	if s.stmts.m == nil {
		s.stmts.m = map[string]*sql.Stmt{}
	}
	s.stmts.m[name] = st
	return st, nil
}

// queryRow runs prepared statement name (built by build) with args and scans its first
// row into dest, a bun model; sql.ErrNoRows when there is none.
func (s *Store) queryRow(ctx context.Context, name string, build func() string, dest any, args ...any) error {
	st, err := s.prepared(ctx, name, build)
	if err != nil {
		return err
	}
	s.statements.Add(1)
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := s.DB.ScanRow(ctx, rows, dest); err != nil {
		return err
	}
	return rows.Close()
}

// execPrepared runs prepared statement name (built by build) with args.
func (s *Store) execPrepared(ctx context.Context, name string, build func() string, args ...any) (sql.Result, error) {
	st, err := s.prepared(ctx, name, build)
	if err != nil {
		return nil, err
	}
	s.statements.Add(1)
	return st.ExecContext(ctx, args...)
}

// txStmt returns prepared statement name (built by build) for use inside tx. Call it
// before the transaction starts: preparing needs a connection, and SQLite's only one is
// the transaction's once it runs.
func (s *Store) txStmt(ctx context.Context, name string, build func() string) (func(bun.Tx) *sql.Stmt, error) {
	st, err := s.prepared(ctx, name, build)
	if err != nil {
		return nil, err
	}
	return func(tx bun.Tx) *sql.Stmt {
		s.statements.Add(1)
		return tx.StmtContext(ctx, st)
	}, nil
}

// Statements returns how many SQL statements this store has run (BEGIN and COMMIT
// count): what a pipeline step costs the database, which TestStatementsPerItem bounds.
func (s *Store) Statements() uint64 { return s.statements.Load() }

// countStatements counts the statements bun runs.
type countStatements struct{ n *atomic.Uint64 }

func (c countStatements) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	return ctx
}
func (c countStatements) AfterQuery(context.Context, *bun.QueryEvent) { c.n.Add(1) }

// closeStatements closes the prepared statements (before the database closes).
func (s *Store) closeStatements() {
	s.stmts.mu.Lock()
	defer s.stmts.mu.Unlock()
	for _, st := range s.stmts.m {
		st.Close()
	}
	s.stmts.m = nil
}

// modelColumns returns the columns of model (a pointer to a bun model, nil is fine) in
// bun's order, leaving out the named ones.
func (s *Store) modelColumns(model any, except ...string) []*schema.Field {
	table := s.DB.Table(reflect.TypeOf(model).Elem())
	skip := make(map[string]bool, len(except))
	for _, c := range except {
		skip[c] = true
	}
	var out []*schema.Field
	for _, f := range table.Fields {
		if !skip[f.Name] {
			out = append(out, f)
		}
	}
	return out
}

// columnArgs returns the arguments that write fields of strct (a pointer to a bun model)
// the way bun writes them into its SQL text: times as UTC text in bun's format (the
// columns hold text on SQLite, and both dialects compare them), JSON columns as their
// JSON text, nil pointers as NULL. TestPreparedWritesAsBunDoes compares the two.
func columnArgs(fields []*schema.Field, strct any) ([]any, error) {
	v := reflect.ValueOf(strct).Elem()
	out := make([]any, 0, len(fields))
	for _, f := range fields {
		a, err := columnArg(f.Value(v))
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", f.Name, err)
		}
		out = append(out, a)
	}
	return out, nil
}

func columnArg(v reflect.Value) (any, error) {
	switch x := v.Interface().(type) {
	case string:
		return x, nil
	case int:
		return int64(x), nil
	case int64:
		return x, nil
	case bool:
		return x, nil
	case float64:
		return x, nil
	case time.Time:
		return bunTime(x), nil
	case *time.Time:
		if x == nil {
			return nil, nil
		}
		return bunTime(*x), nil
	case *string:
		if x == nil {
			return nil, nil
		}
		return *x, nil
	}
	switch v.Kind() {
	case reflect.Map, reflect.Slice, reflect.Struct:
		b, err := json.Marshal(v.Interface())
		if err != nil {
			return nil, err
		}
		return string(b), nil
	}
	return nil, fmt.Errorf("no prepared-statement form for %s", v.Type())
}

// bunTime is a time as bun writes it (schema.BaseDialect.AppendTime, without quotes).
func bunTime(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05.999999-07:00")
}

// placeholders returns n placeholders from first, comma-separated, in the store's dialect.
func (s *Store) placeholders(first, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(s.ph(first + i)))
	}
	return b.String()
}

// setList is the SET clause of an UPDATE of the columns, their values bound from
// placeholder first on.
func (s *Store) setList(fields []*schema.Field, first int) string {
	var b strings.Builder
	for i, f := range fields {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, `"%s" = %s`, f.Name, s.ph(first+i))
	}
	return b.String()
}

// columnList quotes the columns' names for a statement's text.
func columnList(fields []*schema.Field) string {
	var b strings.Builder
	for i, f := range fields {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(`"` + f.Name + `"`)
	}
	return b.String()
}
