package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/app"
	"github.com/cn-relay-manager/cn-relay-manager/internal/batch/request"
	"github.com/cn-relay-manager/cn-relay-manager/internal/config"
	"github.com/cn-relay-manager/cn-relay-manager/internal/demo"
)

// liveAPI is the real all-in-one app (embedded queue, SQLite, worker, API) serving on
// loopback with the demo's simulated providers and host.
type liveAPI struct {
	base, token string
	sims        *demo.Simulators
}

func startLiveAPI(t *testing.T) *liveAPI {
	t.Helper()
	sims, err := demo.StartSimulators("0.1.179", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sims.Close)
	dir := t.TempDir()
	token := "test-token-0123456789abcdef"
	cfg := config.Defaults()
	cfg.DataDir = dir
	cfg.DatabaseURL = filepath.Join(dir, "crm.db")
	cfg.APIToken = token
	cfg.WindowDeadline = 45 * time.Second
	cfg.WindowSchedule = []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 5 * time.Second}
	cfg.SweepInterval = 5 * time.Second
	cfg.AllowPrivateUpstreams = true // the simulated providers listen on loopback
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	workerDone := make(chan error, 1)
	go func() { workerDone <- a.RunWorker(ctx) }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	web := a.APIServer(token).NewApp()
	go web.Listener(ln) //nolint:errcheck
	t.Cleanup(func() {
		web.Shutdown() //nolint:errcheck
		cancel()
		<-workerDone
		a.Close()
	})
	return &liveAPI{base: "http://" + ln.Addr().String(), token: token, sims: sims}
}

type result struct {
	code           int
	stdout, stderr string
}

func (l *liveAPI) run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	full := append([]string{"--api", l.base, "--token", l.token}, args...)
	code := Run(ctx, full, strings.NewReader(stdin), &out, &errb)
	t.Logf("crmctl %s → %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out.String(), errb.String())
	return result{code, out.String(), errb.String()}
}

// demoCSV writes the demo items as a CSV file with a header (models separated by ';').
func demoCSV(t *testing.T, items []request.Item) string {
	t.Helper()
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write([]string{"Name", "Provider", "URL", "API_Key", "Models"}) //nolint:errcheck
	for _, it := range items {
		w.Write([]string{it.Name, it.Provider, it.BaseURL, it.APIKey, strings.Join(it.Models, ";")}) //nolint:errcheck
	}
	w.Flush()
	path := filepath.Join(t.TempDir(), "items.csv")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func checkNoSecrets(t *testing.T, r result, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(r.stdout, s) || strings.Contains(r.stderr, s) {
			t.Errorf("output shows the secret %s", Mask(s))
		}
	}
}

// The definition of done: `crmctl batch submit --wait` on a CSV of the demo items
// shows progress and ends with the table; the demo's failing items make the exit code 1.
func TestIntegrationSubmitWaitDemoCSV(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the all-in-one app")
	}
	l := startLiveAPI(t)
	secrets := append(demo.Keys(), l.sims.AdminKey)

	r := l.run(t, "", "hosts", "add", "--name", "demo-host", "--admin-url", l.sims.Host.URL(), "--admin-key", l.sims.AdminKey)
	if r.code != 0 || !strings.Contains(r.stdout, "registered host demo-host") {
		t.Fatalf("hosts add: exit %d", r.code)
	}
	checkNoSecrets(t, r, secrets...)

	csvPath := demoCSV(t, l.sims.Items())
	r = l.run(t, "", "batch", "submit", csvPath, "--host", "demo-host", "--name", "cli demo", "--wait", "--interval", "200ms")
	if r.code != ExitFailed {
		t.Errorf("exit code %d, want 1 (the demo has failing items)", r.code)
	}
	checkNoSecrets(t, r, secrets...)
	if !strings.Contains(r.stderr, "[") || !regexp.MustCompile(`\] 8/8 `).MatchString(r.stderr) {
		t.Errorf("no progress bar reaching 8/8 on stderr")
	}
	if !strings.Contains(r.stderr, "2 of 8 items failed") {
		t.Errorf("stderr does not report the failed items")
	}
	want := demo.Expected()
	lines := strings.Split(r.stdout, "\n")
	if !strings.Contains(r.stdout, "ITEM") || !strings.Contains(r.stdout, "MODEL CORRECTIONS") {
		t.Fatalf("no table header")
	}
	for name, w := range want {
		found := false
		for _, ln := range lines {
			if !strings.HasPrefix(ln, name+"  ") {
				continue
			}
			found = true
			f := strings.Fields(strings.TrimPrefix(ln, name))
			if len(f) < 4 || f[1] != w[0] || (w[1] != "" && f[2] != w[1]) || (w[1] == "" && f[2] != "-") {
				t.Errorf("%s: row %q, want state %s failure %q", name, ln, w[0], w[1])
			}
		}
		if !found {
			t.Errorf("item %q is not in the table", name)
		}
	}
	if !strings.Contains(r.stdout, `"kimi-k2-6"→kimi-k2.6 (separator)`) {
		t.Errorf("model corrections are not shown")
	}
	m := regexp.MustCompile(`submitted batch (\S+):`).FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatal("no batch id in the submit message")
	}
	batchID := m[1]

	// The other commands against the same batch.
	r = l.run(t, "", "batch", "list", "--host", "demo-host")
	if r.code != 0 || !strings.Contains(r.stdout, batchID) || !strings.Contains(r.stdout, "partially_succeeded") {
		t.Errorf("batch list: exit %d", r.code)
	}
	r = l.run(t, "", "batch", "show", batchID)
	if r.code != 0 || !strings.Contains(r.stdout, "deepseek invalid key") || !strings.Contains(r.stdout, "invalid_key") {
		t.Errorf("batch show: exit %d", r.code)
	}
	checkNoSecrets(t, r, secrets...)
	r = l.run(t, "", "batch", "show", batchID, "--item", "#4")
	if r.code != 0 || !strings.Contains(r.stdout, "attempts (") || !strings.Contains(r.stdout, "invalid_key") {
		t.Errorf("batch show --item: exit %d", r.code)
	}
	checkNoSecrets(t, r, secrets...)
	r = l.run(t, "", "-o", "json", "batch", "show", batchID)
	var shown struct {
		Batch batchView  `json:"batch"`
		Items []itemView `json:"items"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &shown) != nil || len(shown.Items) != 8 || shown.Batch.ID != batchID {
		t.Errorf("batch show --output json: exit %d", r.code)
	}
	r = l.run(t, "", "hosts", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "demo-host") {
		t.Errorf("hosts list: exit %d", r.code)
	}
	r = l.run(t, "", "hosts", "probe", "demo-host")
	if r.code != 0 || !strings.Contains(r.stdout, "status:") {
		t.Errorf("hosts probe: exit %d", r.code)
	}
	checkNoSecrets(t, r, secrets...)
	r = l.run(t, "", "batch", "cancel", batchID)
	if r.code != 0 || !strings.Contains(r.stdout, "0 items cancelled") {
		t.Errorf("batch cancel of a finished batch: exit %d", r.code)
	}
	// reconcile and rollback are queued operations; --wait follows them.
	r = l.run(t, "", "batch", "reconcile", batchID, "--wait", "--interval", "200ms", "--timeout", "1m")
	if r.code != 0 || !strings.Contains(r.stdout, "reconcile run") || !strings.Contains(r.stdout, "completed") {
		t.Errorf("batch reconcile --wait: exit %d", r.code)
	}
	r = l.run(t, "", "batch", "rollback", batchID, "--wait", "--interval", "200ms", "--timeout", "1m")
	if r.code != 0 || !strings.Contains(r.stdout, "last action: rollback completed") || !strings.Contains(r.stdout, "deleted") {
		t.Errorf("batch rollback --wait: exit %d", r.code)
	}
	r = l.run(t, "", "batch", "show", batchID)
	if r.code != 0 || !strings.Contains(r.stdout, "last action: rollback completed") || !strings.Contains(r.stdout, "rolled_back") {
		t.Errorf("batch show after rollback: exit %d", r.code)
	}
	// A line-number error: a bad line in plain-lines input on stdin.
	r = l.run(t, "https://api.deepseek.com sk-one-0000000000001\nnot-a-url sk-two-0000000000002\n", "batch", "submit", "--host", "demo-host", "-")
	if r.code != ExitFailed || !strings.Contains(r.stderr, "stdin: line 2:") {
		t.Errorf("bad input: exit %d", r.code)
	}
	checkNoSecrets(t, r, "sk-one-0000000000001", "sk-two-0000000000002")
	// The API names items[1]; the CLI maps it back to the input line.
	r = l.run(t, "# two items with the same key\n\nhttps://api.deepseek.com sk-same-0000000000001\nhttps://api.moonshot.cn/v1 sk-same-0000000000001\n",
		"batch", "submit", "--host", "demo-host")
	if r.code != ExitFailed || !strings.Contains(r.stderr, "stdin: line 4:") || !strings.Contains(r.stderr, "items[1].api_key") {
		t.Errorf("duplicate key: exit %d", r.code)
	}
	checkNoSecrets(t, r, "sk-same-0000000000001")
	// Bad token.
	var out, errb bytes.Buffer
	code := Run(context.Background(), []string{"--api", l.base, "--token", "wrong", "hosts", "list"}, strings.NewReader(""), &out, &errb)
	if code != ExitFailed || !strings.Contains(errb.String(), "unauthorized") || !strings.Contains(errb.String(), "CRM_API_TOKEN") {
		t.Errorf("bad token: exit %d, stderr %s", code, errb.String())
	}
}
