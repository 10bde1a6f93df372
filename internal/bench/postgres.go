package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
)

// isPostgres reports whether u names a PostgreSQL server (postgres:// or postgresql://).
func isPostgres(u string) bool {
	return strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://")
}

// pgServer is the PostgreSQL server --database-url names. The bench never runs on the
// database the URL names (it may hold data the bench did not create): it connects to it
// only to create a fresh database crm_bench_<random>, runs on that one and drops it at
// the end. It talks to the server through psql, so crmctl links no database driver.
type pgServer struct {
	psql     string
	url      *url.URL // without the password
	password string   // given to psql as PGPASSWORD, never on its command line
}

func newPGServer(rawURL, psql string) (*pgServer, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("--database-url: %q is not a postgres://user@host:port/db URL", redact(rawURL))
	}
	s := &pgServer{psql: psql, url: u}
	if pw, ok := u.User.Password(); ok {
		s.password = pw
		cp := *u
		cp.User = url.User(u.User.Username())
		s.url = &cp
	}
	return s, nil
}

// redact hides the password of a URL for messages.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "(unparsable URL)"
}

// dbURL is the URL of database name on the server, with the password, for the api and
// workers (CRM_DATABASE_URL).
func (s *pgServer) dbURL(name string) string {
	u := *s.url
	if s.password != "" {
		u.User = url.UserPassword(u.User.Username(), s.password)
	}
	u.Path, u.RawPath = "/"+name, ""
	return u.String()
}

// exec runs one SQL statement with psql on the database the URL names.
func (s *pgServer) exec(ctx context.Context, sql string) error {
	cmd := exec.CommandContext(ctx, s.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", s.url.String(), "-c", sql)
	cmd.Env = os.Environ()
	if s.password != "" {
		cmd.Env = append(cmd.Env, "PGPASSWORD="+s.password)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("psql -d %s -c %q: %v: %s", s.url.Redacted(), sql, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// create makes a fresh database crm_bench_<random> and returns its name.
func (s *pgServer) create(ctx context.Context) (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	name := "crm_bench_" + hex.EncodeToString(b)
	return name, s.exec(ctx, "CREATE DATABASE "+name)
}

// drop removes database name, ending the connections still open to it.
func (s *pgServer) drop(ctx context.Context, name string) error {
	err := s.exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	if err != nil && strings.Contains(err.Error(), "syntax error") { // PostgreSQL < 13
		err = s.exec(ctx, "DROP DATABASE IF EXISTS "+name)
	}
	return err
}

// dropCommand is the command an operator runs to drop a kept database.
func (s *pgServer) dropCommand(name string) string {
	return fmt.Sprintf("psql -d '%s' -c 'DROP DATABASE %s'", s.url.String(), name)
}
