package cli

import (
	"strings"
	"testing"

	"github.com/cn-relay-manager/cn-relay-manager/internal/demo"
)

// hosts test, update (rename, admin key rotation from stdin, a refused key) and delete
// (refused while the ledger holds objects, then --forget) against the real API.
func TestIntegrationHostLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the all-in-one app")
	}
	l := startLiveAPI(t)
	secrets := append(demo.Keys(), l.sims.AdminKey)
	if r := l.run(t, "", "hosts", "add", "--name", "demo-host", "--admin-url", l.sims.Host.URL(), "--admin-key", l.sims.AdminKey); r.code != 0 {
		t.Fatalf("hosts add: exit %d", r.code)
	}
	r := l.run(t, "", "hosts", "test", "demo-host")
	if r.code != 0 || !strings.Contains(r.stdout, "connection ok: ok") || !strings.Contains(r.stdout, "stored settings") {
		t.Errorf("hosts test: exit %d", r.code)
	}
	r = l.run(t, "wrong-admin-key-0123456789\n", "hosts", "test", "demo-host", "--admin-key", "-")
	if r.code != ExitFailed || !strings.Contains(r.stdout, "connection failed: auth_failed") || !strings.Contains(r.stdout, "given settings") {
		t.Errorf("hosts test with a wrong key: exit %d", r.code)
	}
	r = l.run(t, "", "hosts", "update", "demo-host", "--name", "demo-2")
	if r.code != 0 || !strings.Contains(r.stdout, "updated host demo-2") {
		t.Errorf("rename: exit %d", r.code)
	}
	r = l.run(t, l.sims.AdminKey+"\n", "hosts", "update", "demo-2", "--admin-key", "-")
	if r.code != 0 || !strings.Contains(r.stdout, "auth:") {
		t.Errorf("rotation: exit %d", r.code)
	}
	checkNoSecrets(t, r, secrets...)
	r = l.run(t, "", "hosts", "update", "demo-2", "--admin-key", "wrong-admin-key-0123456789")
	if r.code != ExitFailed || !strings.Contains(r.stderr, "host_auth_failed") {
		t.Errorf("refused key: exit %d", r.code)
	}
	if r = l.run(t, "", "hosts", "update", "demo-2"); r.code != ExitUsage {
		t.Errorf("update without a change: exit %d", r.code)
	}
	r = l.run(t, "", "batch", "submit", demoCSV(t, l.sims.Items()[:1]), "--host", "demo-2", "--wait", "--interval", "200ms")
	if r.code != 0 {
		t.Fatalf("submit on the renamed host: exit %d", r.code)
	}
	r = l.run(t, "", "hosts", "delete", "demo-2")
	if r.code != ExitFailed || !strings.Contains(r.stderr, "host_in_use") || !strings.Contains(r.stderr, "--forget") && !strings.Contains(r.stderr, "forget=true") {
		t.Errorf("delete with ledger objects: exit %d", r.code)
	}
	r = l.run(t, "", "hosts", "delete", "demo-2", "--forget")
	if r.code != 0 || !strings.Contains(r.stdout, "host demo-2 deleted") || !strings.Contains(r.stdout, "stay on the host") {
		t.Errorf("forgetting delete: exit %d", r.code)
	}
	if r = l.run(t, "", "hosts", "list"); !strings.Contains(r.stdout, "no hosts registered") {
		t.Errorf("hosts left after delete")
	}
}
