// Package testpg gives a test its own PostgreSQL database on the local server, so tests
// never depend on (or touch) data they did not create. Each call creates a database with a
// random name and drops it in t.Cleanup. A server that does not answer fails the test
// loudly: the project's scripts install and start one (`make deps`, see scripts/deps.sh).
//
// The server is found through CRM_TEST_PG_ADDR (host:port, default 127.0.0.1:5432) and
// CRM_TEST_PG_USER (default postgres); the role must be able to create databases and must
// connect without a password (trust for 127.0.0.1) unless CRM_TEST_PG_PASSWORD is set.
package testpg

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// Default connection settings, overridable through the environment.
const (
	DefaultAddr = "127.0.0.1:5432"
	DefaultUser = "postgres"
)

// Addr returns the server address the tests use.
func Addr() string { return envOr("CRM_TEST_PG_ADDR", DefaultAddr) }

// User returns the role the tests connect as.
func User() string { return envOr("CRM_TEST_PG_USER", DefaultUser) }

// Start creates a fresh database on the local server and returns its DSN
// (postgres://user@addr/crm_test_<random>?sslmode=disable). The database is dropped,
// with every connection to it terminated, when the test ends.
func Start(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	addr := Addr()
	admin, err := openAdmin()
	if err != nil {
		t.Fatalf("testpg: %v", err)
	}
	defer admin.Close()
	if err := admin.PingContext(ctx); err != nil {
		t.Fatalf("testpg: no PostgreSQL server usable at %s as user %q: %v\n"+
			"Install and start one with `make deps` (scripts/deps.sh: apt-get install postgresql, "+
			"pg_ctlcluster <version> main start, trust for 127.0.0.1), or point CRM_TEST_PG_ADDR / "+
			"CRM_TEST_PG_USER at a server where that role may create databases without a password.",
			addr, User(), err)
	}

	name := "crm_test_" + randomSuffix(t)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testpg: create database %s on %s: %v", name, addr, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := openAdmin()
		if err != nil {
			t.Errorf("testpg: drop database %s: %v", name, err)
			return
		}
		defer admin.Close()
		// WITH (FORCE) (PostgreSQL >= 13) terminates connections a test left open.
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("testpg: drop database %s: %v", name, err)
		}
	})
	return dsn(addr, name)
}

// openAdmin connects to the maintenance database "postgres" to create and drop databases.
func openAdmin() (*sql.DB, error) {
	db, err := sql.Open("pgx", dsn(Addr(), "postgres"))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

func dsn(addr, db string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port = addr, "5432"
	}
	u := url.URL{
		Scheme:   "postgres",
		Host:     net.JoinHostPort(host, port),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	if pw, ok := os.LookupEnv("CRM_TEST_PG_PASSWORD"); ok {
		u.User = url.UserPassword(User(), pw)
	} else {
		u.User = url.User(User())
	}
	return u.String()
}

func randomSuffix(t testing.TB) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("testpg: random name: %v", err)
	}
	return hex.EncodeToString(b)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
