package store

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrNotFound is returned when a row does not exist.
var ErrNotFound = errors.New("not found")

// ErrStale is returned when a step completion lost the race against another worker or a
// newer schedule of the same item (its sequence number moved on).
var ErrStale = errors.New("stale step")

// ErrConflict is returned (wrapped) when a write would break a unique constraint: the
// row (a reconcile slot, a host name, an idempotency key, a ledger name) already exists.
var ErrConflict = errors.New("the row already exists")

// ErrNothingRecorded is returned when the ledger holds nothing for a batch: a rollback
// would be a blind delete.
var ErrNothingRecorded = errors.New("the ledger holds no host object for this batch; refusing a blind delete")

// pgUniqueViolation is PostgreSQL's SQLSTATE for a unique constraint violation.
const pgUniqueViolation = "23505"

// isUniqueViolation classifies a driver error by its code, never by its text: SQLite's
// extended result codes for a UNIQUE or PRIMARY KEY constraint, PostgreSQL's SQLSTATE
// 23505.
func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == pgUniqueViolation
	}
	return false
}

// writeError wraps a failed write with what was written, and with ErrConflict when the
// database refused it as a duplicate.
func writeError(what string, err error) error {
	if isUniqueViolation(err) {
		return fmt.Errorf("%s: %w: %w", what, ErrConflict, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
