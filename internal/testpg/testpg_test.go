package testpg

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

func TestStartCreatesAndDropsPrivateDatabase(t *testing.T) {
	var dsn string
	var db *sql.DB
	defer func() {
		if db != nil {
			db.Close()
		}
	}()
	t.Run("use", func(t *testing.T) {
		dsn = Start(t)
		var err error
		db, err = sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		var name string
		if err := db.QueryRowContext(context.Background(), "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(name, "crm_test_") || !strings.HasSuffix(dsn, "/"+name+"?sslmode=disable") {
			t.Fatalf("database %q for DSN %s", name, dsn)
		}
		if _, err := db.Exec("CREATE TABLE t (x INT)"); err != nil {
			t.Fatal(err)
		}
		// db stays open past the cleanup: an open connection must not prevent the drop.
	})
	name := dsn[strings.LastIndex(dsn, "/")+1 : strings.Index(dsn, "?")]
	admin, err := openAdmin()
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var n int
	if err := admin.QueryRow("SELECT COUNT(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil || n != 0 {
		t.Fatalf("database %s still exists after cleanup (%d, %v)", name, n, err)
	}
}

// fatalTB records Fatalf instead of failing the real test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestStartFailsLoudlyWithoutServer(t *testing.T) {
	t.Setenv("CRM_TEST_PG_ADDR", "127.0.0.1:1")
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Start(f)
	}()
	<-done
	if !strings.Contains(f.msg, "make deps") || !strings.Contains(f.msg, "127.0.0.1:1") {
		t.Fatalf("message does not say how to get a server: %q", f.msg)
	}
	t.Log(f.msg)
}
