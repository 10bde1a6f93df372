package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cn-relay-manager/cn-relay-manager/internal/config"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// A process whose master key opens none of the stored secrets refuses to start with a
// message naming CRM_MASTER_KEY; a generated key file is not left behind. The original
// key starts again, and a database holding no secret accepts any key.
func TestWrongMasterKeyRefusesToStart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := config.Defaults()
	cfg.DataDir, cfg.DatabaseURL = dir, filepath.Join(dir, "k.db")
	cfg.MasterKey = "the-original-master-key-000"
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	a, err := New(ctx, cfg, log) // an empty database: nothing to check
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := a.Box.Seal("admin-key-0123456789abcdef")
	if err := a.Store.CreateHost(ctx, &store.Host{Name: "prod", AdminURL: "http://h", PublicURL: "http://h", AuthKind: "api_key", AdminKeyEnc: sealed}); err != nil {
		t.Fatal(err)
	}
	a.Close()

	for _, tc := range []struct {
		name, key string
		generated bool
	}{{"another key", "a-different-master-key-0000", false}, {"no key: one is generated", "", true}} {
		c := cfg
		c.MasterKey = tc.key
		_, err := New(ctx, c, log)
		var mk *MasterKeyError
		if !errors.As(err, &mk) {
			t.Fatalf("%s: New = %v, want a *MasterKeyError", tc.name, err)
		}
		if !strings.HasPrefix(err.Error(), "CRM_MASTER_KEY:") || !strings.Contains(err.Error(), "host prod (admin key)") ||
			mk.Generated != tc.generated {
			t.Errorf("%s: %v (generated %v)", tc.name, err, mk.Generated)
		}
		if _, err := os.Stat(filepath.Join(dir, "master.key")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: a master.key file was left in the data directory (%v)", tc.name, err)
		}
	}

	a, err = New(ctx, cfg, log)
	if err != nil {
		t.Fatalf("the original key: %v", err)
	}
	a.Close()
}
