package store

import (
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/uptrace/bun/dialect/pgdialect"
)
