// Package store is the source of truth: bun models, repositories and the migration
// runner. Everything the product knows about hosts, batches, items, attempts and the
// ledger lives here; Redis only carries work to do.
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/driver/sqliteshim"
	"github.com/uptrace/bun/migrate"

	"github.com/cn-relay-manager/cn-relay-manager/migrations"
)

// Dialect names returned by Store.Dialect.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// PostgreSQL connection pool limits (per process). A worker runs at most its asynq
// concurrency of transactions at once; the API a few more. Keep the total of all processes
// well under the server's max_connections (100 by default).
const (
	pgMaxOpenConns    = 20
	pgMaxIdleConns    = 10
	pgConnMaxIdleTime = 5 * time.Minute
	pgConnMaxLifetime = 30 * time.Minute
)

// pgMigrateLockKey is the pg_advisory_lock key that serialises Migrate across processes
// sharing one PostgreSQL database ("crmm" in ASCII).
const pgMigrateLockKey int64 = 0x63726d6d

// Store wraps the database.
type Store struct {
	DB      *bun.DB
	now     func() time.Time
	dialect string
	stmts   stmts // prepared statements of the hot path (prepared.go)

	stepOnce sync.Once
	stepCols *stepColumns

	statements atomic.Uint64 // see Statements
}

// newStore wraps an open database.
func newStore(db *bun.DB, dialect string) *Store {
	s := &Store{DB: db, now: utcNow, dialect: dialect}
	db.AddQueryHook(countStatements{&s.statements})
	return s
}

// Open connects to the database named by url: a PostgreSQL DSN ("postgres://" or
// "postgresql://", pgx driver, bun's pgdialect) or else a SQLite file path (optionally
// prefixed with "sqlite:" or "file:"). SQLite runs in WAL mode with a busy timeout and
// immediate transactions so that concurrent workers never see SQLITE_BUSY.
func Open(ctx context.Context, url string) (*Store, error) {
	switch {
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		return openPostgres(ctx, url)
	}
	path := strings.TrimPrefix(strings.TrimPrefix(url, "sqlite:"), "file:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if path == "" {
		return nil, errors.New("CRM_DATABASE_URL: empty SQLite path")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("CRM_DATABASE_URL: create directory %s: %w", dir, err)
		}
	}
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(ON)&_txlock=immediate"
	sqldb, err := openSQLiteUTC(dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	// One connection: SQLite has one writer anyway, and with several pooled connections
	// every commit made the others drop their page cache (measured: 25–30 % faster per
	// step, see docs/perf.md). Migrations get a few more while they run.
	sqldb.SetMaxOpenConns(sqliteConns)
	db := bun.NewDB(sqldb, sqlitedialect.New())
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	// The database holds sealed secrets only, but keep it private anyway.
	_ = os.Chmod(path, 0o600)
	return newStore(db, DialectSQLite), nil
}

// openPostgres connects through pgx's database/sql driver. bun interpolates every
// argument into the SQL text itself, so pgx runs the statements with the simple protocol
// (unless the DSN sets default_query_exec_mode): caching a prepared statement per distinct
// query text would only fill the statement cache.
func openPostgres(ctx context.Context, dsn string) (*Store, error) {
	shown := redactDSN(dsn)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors may echo the DSN: report only the redacted form.
		return nil, fmt.Errorf("CRM_DATABASE_URL: invalid PostgreSQL DSN %s", shown)
	}
	if !strings.Contains(dsn, "default_query_exec_mode=") {
		cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	}
	sqldb := stdlib.OpenDB(*cfg)
	sqldb.SetMaxOpenConns(pgMaxOpenConns)
	sqldb.SetMaxIdleConns(pgMaxIdleConns)
	sqldb.SetConnMaxIdleTime(pgConnMaxIdleTime)
	sqldb.SetConnMaxLifetime(pgConnMaxLifetime)
	db := bun.NewDB(sqldb, pgdialect.New())
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open postgres %s: %w", shown, err)
	}
	return newStore(db, DialectPostgres), nil
}

// redactDSN hides the password of a URL-form DSN for messages.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable URL)"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

func utcNow() time.Time { return time.Now().UTC() }

// Dialect reports the database in use: DialectSQLite ("sqlite") or DialectPostgres
// ("postgres").
func (s *Store) Dialect() string { return s.dialect }

// Close closes the database.
func (s *Store) Close() error {
	s.closeStatements()
	return s.DB.Close()
}

// Migrate applies every pending migration.
func (s *Store) Migrate(ctx context.Context) error {
	return s.withMigrator(ctx, true, func(m *migrate.Migrator) error {
		if _, err := m.Migrate(ctx); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		return nil
	})
}

// Rollback undoes the last migration group (used by tests and operators).
func (s *Store) Rollback(ctx context.Context) error {
	return s.withMigrator(ctx, false, func(m *migrate.Migrator) error {
		if _, err := m.Rollback(ctx); err != nil {
			return fmt.Errorf("rollback: %w", err)
		}
		return nil
	})
}

// withMigrator runs fn holding both the cross-process migration lock and bun's own
// migration lock, with the pool widened for bun/migrate.
func (s *Store) withMigrator(ctx context.Context, init bool, fn func(*migrate.Migrator) error) error {
	defer s.widenPool()()
	m, err := s.migrator()
	if err != nil {
		return err
	}
	unlock, err := s.lockMigrations(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if init {
		if err := m.Init(ctx); err != nil {
			return fmt.Errorf("migrate init: %w", err)
		}
	}
	if err := m.Lock(ctx); err != nil {
		return fmt.Errorf("migrate lock: %w", err)
	}
	defer m.Unlock(ctx) //nolint:errcheck
	return fn(m)
}

// lockMigrations serialises migration runs of several processes sharing one PostgreSQL
// database (an API and workers starting together): the second waits for the first instead
// of racing it on CREATE TABLE or failing on bun's migration lock table. The lock is a
// session advisory lock held on a dedicated connection. On SQLite it is a no-op
// (immediate transactions already serialise writers).
func (s *Store) lockMigrations(ctx context.Context) (func(), error) {
	if s.dialect != DialectPostgres {
		return func() {}, nil
	}
	conn, err := s.DB.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate lock: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(?)", pgMigrateLockKey); err != nil {
		conn.Close()
		return nil, fmt.Errorf("migrate lock: %w", err)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock(?)", pgMigrateLockKey); err != nil {
			// Closing would not end the session if the connection went back to a pool;
			// mark it bad so the session (and its lock) ends with it.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		conn.Close()
	}, nil
}

func (s *Store) migrator() (*migrate.Migrator, error) {
	ms := migrate.NewMigrations()
	if err := ms.Discover(migrations.FS); err != nil {
		return nil, fmt.Errorf("discover migrations: %w", err)
	}
	return migrate.NewMigrator(s.DB, ms), nil
}

// Ping checks the database for readiness probes.
func (s *Store) Ping(ctx context.Context) error { return s.DB.PingContext(ctx) }

// NewID returns a time-ordered unique identifier.
func NewID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return err
}

// The SQLite driver reads TIMESTAMP columns back with time.Parse, which yields time.Local
// (or an unnamed zone) rather than time.UTC even though bun wrote them in UTC. To make
// timestamps read back as UTC on both dialects, as pgx does for TIMESTAMP on PostgreSQL,
// the SQLite connections are wrapped so that every time.Time in a result row is converted
// with UTC(). The wrapper forwards everything else to the driver unchanged.

const sqliteUTCDriverName = "crm-sqlite-utc"

var registerSQLiteUTC sync.Once

func openSQLiteUTC(dsn string) (*sql.DB, error) {
	var regErr error
	registerSQLiteUTC.Do(func() {
		inner, err := sql.Open(sqliteshim.ShimName, "")
		if err != nil {
			regErr = err
			return
		}
		sql.Register(sqliteUTCDriverName, utcDriver{inner.Driver()})
		inner.Close()
	})
	if regErr != nil {
		return nil, regErr
	}
	return sql.Open(sqliteUTCDriverName, dsn)
}

type utcDriver struct{ driver.Driver }

func (d utcDriver) Open(name string) (driver.Conn, error) {
	c, err := d.Driver.Open(name)
	if err != nil {
		return nil, err
	}
	return &utcConn{c}, nil
}

type utcConn struct{ driver.Conn }

var (
	_ driver.ConnBeginTx        = (*utcConn)(nil)
	_ driver.ConnPrepareContext = (*utcConn)(nil)
	_ driver.ExecerContext      = (*utcConn)(nil)
	_ driver.QueryerContext     = (*utcConn)(nil)
	_ driver.Pinger             = (*utcConn)(nil)
	_ driver.SessionResetter    = (*utcConn)(nil)
	_ driver.Validator          = (*utcConn)(nil)
	_ driver.NamedValueChecker  = (*utcConn)(nil)
)

func (c *utcConn) Prepare(query string) (driver.Stmt, error) {
	st, err := c.Conn.Prepare(query)
	if err != nil {
		return nil, err
	}
	return &utcStmt{st}, nil
}

func (c *utcConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if p, ok := c.Conn.(driver.ConnPrepareContext); ok {
		st, err := p.PrepareContext(ctx, query)
		if err != nil {
			return nil, err
		}
		return &utcStmt{st}, nil
	}
	return c.Prepare(query)
}

func (c *utcConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if b, ok := c.Conn.(driver.ConnBeginTx); ok {
		return b.BeginTx(ctx, opts)
	}
	return c.Conn.Begin() //nolint:staticcheck // fallback for drivers without BeginTx
}

func (c *utcConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if e, ok := c.Conn.(driver.ExecerContext); ok {
		return e.ExecContext(ctx, query, args)
	}
	return nil, driver.ErrSkip
}

func (c *utcConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := c.Conn.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	rows, err := q.QueryContext(ctx, query, args)
	if err != nil {
		return nil, err
	}
	return &utcRows{rows}, nil
}

func (c *utcConn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *utcConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *utcConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (c *utcConn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.Conn.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

type utcStmt struct{ driver.Stmt }

func (s *utcStmt) Query(args []driver.Value) (driver.Rows, error) {
	rows, err := s.Stmt.Query(args) //nolint:staticcheck // required by driver.Stmt
	if err != nil {
		return nil, err
	}
	return &utcRows{rows}, nil
}

func (s *utcStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := s.Stmt.(driver.StmtQueryContext)
	if !ok {
		vals := make([]driver.Value, len(args))
		for i, a := range args {
			vals[i] = a.Value
		}
		return s.Query(vals)
	}
	rows, err := q.QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	return &utcRows{rows}, nil
}

func (s *utcStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	if e, ok := s.Stmt.(driver.StmtExecContext); ok {
		return e.ExecContext(ctx, args)
	}
	vals := make([]driver.Value, len(args))
	for i, a := range args {
		vals[i] = a.Value
	}
	return s.Stmt.Exec(vals) //nolint:staticcheck // fallback for drivers without ExecContext
}

type utcRows struct{ driver.Rows }

func (r *utcRows) Next(dest []driver.Value) error {
	if err := r.Rows.Next(dest); err != nil {
		return err
	}
	for i, v := range dest {
		if t, ok := v.(time.Time); ok {
			dest[i] = t.UTC()
		}
	}
	return nil
}

func (r *utcRows) ColumnTypeDatabaseTypeName(index int) string {
	if c, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return c.ColumnTypeDatabaseTypeName(index)
	}
	return ""
}

func (r *utcRows) ColumnTypeScanType(index int) reflect.Type {
	if c, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return c.ColumnTypeScanType(index)
	}
	return reflect.TypeFor[any]()
}

func (r *utcRows) ColumnTypeNullable(index int) (nullable, ok bool) {
	if c, ok := r.Rows.(driver.RowsColumnTypeNullable); ok {
		return c.ColumnTypeNullable(index)
	}
	return false, false
}

// sqliteConns is the SQLite pool size outside migrations.
const sqliteConns = 1

// widenPool lets bun/migrate use more than one connection (its lock table and its
// transactions interleave); the returned func restores the single-connection pool.
func (s *Store) widenPool() func() {
	if s.dialect != DialectSQLite {
		return func() {}
	}
	s.DB.SetMaxOpenConns(4)
	return func() { s.DB.SetMaxOpenConns(sqliteConns) }
}
