package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cn-relay-manager/cn-relay-manager/internal/demo"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// TestSecretLeak runs the demo batch through the split processes with recognisable keys,
// then searches the logs, every Redis key and value, asynqmon's API, every API response,
// the web pages and the raw database files for every secret: zero occurrences.
func TestSecretLeak(t *testing.T) {
	s := startSplit(t, 1, 0)
	c, sims, api, worker, r, dir := s.c, s.sims, s.api, s.workers[0], s.redis, s.dir
	id := c.submit(t, sims)
	items := c.waitBatch(t, id, 2*time.Minute, func() string { return api.output() + worker.output() })
	checkItems(t, items, sims)
	var run store.ReconcileRun
	c.do(t, "POST", "/api/v1/batches/"+id+"/reconcile", nil, &run)
	// The reconcile's own requests and log lines are part of what is searched.
	if !waitFor(time.Minute, func() bool {
		var got store.ReconcileRun
		return c.do(t, "GET", "/api/v1/reconcile-runs/"+run.ID, nil, &got) == 200 && got.FinishedAt != nil
	}) {
		t.Fatalf("reconcile run %s did not finish within a minute", run.ID)
	}

	// Every secret the system handled.
	secrets := map[string]string{"host admin key": sims.AdminKey, "master key": "e2e-master-key-0123456789abcdef"}
	for _, k := range demo.Keys() {
		secrets["upstream key "+k[:12]] = k
	}
	for _, k := range sims.Host.State().Keys {
		secrets["end-user key "+k.Name] = k.Key
	}
	var hosts struct {
		Items []store.Host `json:"items"`
	}
	c.do(t, "GET", "/api/v1/hosts", nil, &hosts)
	box, _ := secret.NewBox("e2e-master-key-0123456789abcdef")
	for _, h := range hosts.Items {
		email := "crm-managed@relay-manager.local"
		secrets["managed user password"] = "Crm-" + box.Derive("user-password:"+h.ID+":"+email, 28)
	}
	if len(sims.Host.State().Keys) == 0 {
		t.Fatal("no end-user keys were created: the test would prove nothing")
	}

	var corpus []struct{ where, text string }
	add := func(where, text string) { corpus = append(corpus, struct{ where, text string }{where, text}) }
	add("api log", api.output())
	add("worker log", worker.output())

	// Redis: every key and value.
	rc := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rc.Close()
	ctx := context.Background()
	keys, err := rc.Keys(ctx, "*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("redis keys: %v %d", err, len(keys))
	}
	for _, k := range keys {
		var b strings.Builder
		b.WriteString(k + " ")
		switch rc.Type(ctx, k).Val() {
		case "string":
			b.WriteString(rc.Get(ctx, k).Val())
		case "hash":
			for f, v := range rc.HGetAll(ctx, k).Val() {
				b.WriteString(f + "=" + v + " ")
			}
		case "list":
			b.WriteString(strings.Join(rc.LRange(ctx, k, 0, -1).Val(), " "))
		case "set":
			b.WriteString(strings.Join(rc.SMembers(ctx, k).Val(), " "))
		case "zset":
			b.WriteString(strings.Join(rc.ZRange(ctx, k, 0, -1).Val(), " "))
		}
		add("redis "+k, b.String())
	}

	// API responses, pages and asynqmon.
	get := func(path string) string {
		req, _ := http.NewRequest("GET", c.Base+path, nil)
		req.Header.Set("Authorization", "Bearer "+c.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
		return string(raw)
	}
	paths := []string{"/api/v1/hosts", "/api/v1/batches", "/api/v1/batches/" + id, "/api/v1/batches/" + id + "/items",
		"/api/v1/resources", "/api/v1/reconcile-runs", "/batches", "/batches/" + id, "/hosts",
		"/monitoring/api/queues", "/monitoring/api/servers", "/monitoring/api/queues/default/completed_tasks",
		"/monitoring/api/queues/default/archived_tasks", "/monitoring/api/queues/default/scheduled_tasks",
		"/monitoring/api/queues/default/pending_tasks", "/monitoring/api/queues/default/retry_tasks"}
	for _, h := range hosts.Items {
		paths = append(paths, "/api/v1/hosts/"+h.ID, "/hosts/"+h.ID)
	}
	for _, it := range items {
		paths = append(paths, "/api/v1/batches/"+id+"/items/"+it.ID, "/batches/"+id+"/items/"+it.ID)
	}
	for _, p := range paths {
		add("GET "+p, get(p))
	}

	// The raw database files.
	files, _ := filepath.Glob(filepath.Join(dir, "crm.db*"))
	if len(files) == 0 {
		t.Fatal("no database files found")
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		add("file "+filepath.Base(f), string(raw))
	}

	leaks := 0
	for name, s := range secrets {
		frags := []string{s}
		if len(s) >= 16 {
			frags = append(frags, s[len(s)-12:]) // a fragment past the masked prefix
		}
		for _, doc := range corpus {
			for _, f := range frags {
				if strings.Contains(doc.text, f) {
					leaks++
					t.Errorf("%s found in %s", name, doc.where)
				}
			}
		}
	}
	t.Logf("searched %d secrets in %d places (%d Redis keys): %d occurrences", len(secrets), len(corpus), len(keys), leaks)
}
