// Package migrations embeds the SQL schema migrations applied by bun/migrate at start.
// The SQL is portable between SQLite and PostgreSQL.
package migrations

import "embed"

// FS holds the *.up.sql and *.down.sql files.
//
//go:embed *.sql
var FS embed.FS
