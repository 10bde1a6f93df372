package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/batch"
	"github.com/cn-relay-manager/cn-relay-manager/internal/demo"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// The api restarted with a different CRM_MASTER_KEY refuses to start, naming the setting,
// and never becomes ready: no batch can be accepted whose items would stay submitted.
// Started again with the original key, a new batch on the same host finishes.
func TestMasterKeyChangeRefusedAtStart(t *testing.T) {
	apiBin, _ := binaries(t)
	sims, err := demo.StartSimulators("0.1.179", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sims.Close()
	dir, listen := t.TempDir(), freeAddr(t)
	env := baseEnv(t, dir, listen)
	first := start(t, apiBin, env)
	c := newAPIClient("http://"+listen, "e2e-token-0123456789abcdef")
	c.waitReady(t, first)
	id := c.submit(t, sims)
	checkItems(t, c.waitBatch(t, id, 2*time.Minute, first.output), sims)
	first.stop(syscall.SIGTERM)

	wrong := start(t, apiBin, append(env, "CRM_MASTER_KEY=another-master-key-0123456789abcdef"))
	exited := make(chan error, 1)
	go func() { exited <- wrong.cmd.Wait() }()
	select {
	case <-exited:
	case <-time.After(time.Minute):
		t.Fatalf("the api with another master key is still running after a minute; log:\n%s", wrong.output())
	}
	if code := wrong.cmd.ProcessState.ExitCode(); code == 0 {
		t.Errorf("the api with another master key exited %d, want a refusal", code)
	}
	// It exited before serving: nothing answers on its address.
	if code := c.do(t, "GET", "/readyz", nil, nil); code != 0 {
		t.Errorf("/readyz answered %d after the refusal", code)
	}
	out := wrong.output()
	for _, want := range []string{"CRM_MASTER_KEY", "opens none of the", "host e2e-host (admin key)", "rotate-master-key"} {
		if !strings.Contains(out, want) {
			t.Errorf("the refusal lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "e2e-master-key") || strings.Contains(out, "another-master-key") {
		t.Error("the refusal shows a master key")
	}

	// The original key: the api starts and a batch on the same host runs to its end.
	again := start(t, apiBin, env)
	c.waitReady(t, again)
	var hosts struct {
		Items []store.Host `json:"items"`
	}
	c.do(t, "GET", "/api/v1/hosts", nil, &hosts)
	if len(hosts.Items) != 1 {
		t.Fatalf("hosts: %+v", hosts.Items)
	}
	var sub struct {
		Batch store.Batch `json:"batch"`
	}
	req := batch.Request{HostID: hosts.Items[0].ID, Name: "after restart", Items: sims.Items()[:1], Force: true}
	if code := c.do(t, "POST", "/api/v1/batches", req, &sub); code != 201 {
		t.Fatalf("submit after the restart: %d", code)
	}
	items := c.waitBatch(t, sub.Batch.ID, 2*time.Minute, again.output)
	for _, it := range items {
		if !store.IsTerminal(it.Status) || it.AttemptCount == 0 || it.FailureClass == "master_key_mismatch" {
			t.Errorf("item %s: %s/%s after %d attempts", it.Name, it.Status, it.FailureClass, it.AttemptCount)
		}
	}
}
