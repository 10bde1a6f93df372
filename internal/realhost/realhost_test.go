//go:build realhost

package realhost

import (
	"net/http"
	"strings"
	"testing"
)

// Each archive builds, starts with its own database and redis-server, and bootstraps an
// admin API key that works; the host starts empty (the first admin and the default group).
func TestRealHostHarness(t *testing.T) {
	for _, b := range FromEnv(t) {
		t.Run(b.Version, func(t *testing.T) {
			h := Start(t, b, Options{})
			if !strings.HasPrefix(h.Database, "crm_test_") {
				t.Errorf("database %q was not created by the harness", h.Database)
			}
			inv, err := h.Inventory()
			if err != nil {
				t.Fatal(err)
			}
			if len(inv.Users) != 1 || !strings.Contains(inv.Users[0], h.AdminEmail) || len(inv.Accounts) != 0 || len(inv.Keys) != 0 {
				t.Errorf("a fresh host should hold only its first admin:\n%s", inv)
			}
			st, _, err := h.Do(http.MethodGet, "/api/v1/admin/system/version", map[string]string{"x-api-key": "admin-" + strings.Repeat("0", 64)}, nil)
			if err != nil || st != http.StatusUnauthorized {
				t.Errorf("a wrong admin key answered %d %v, want 401", st, err)
			}
			t.Logf("%s on %s (database %s, compliance acknowledged: %v)", h.Version, h.URL, h.Database, h.Compliance)
		})
	}
}
