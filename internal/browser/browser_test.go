package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cn-relay-manager/cn-relay-manager/internal/demo"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// syncBuffer is an io.Writer that the demo goroutine writes and the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// chromiumPath finds Debian's chromium; the test fails (never skips) without it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if fi, err := os.Stat("/usr/bin/chromium"); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return "/usr/bin/chromium"
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	t.Fatal("chromium is not installed (no /usr/bin/chromium, no chromium on PATH): run `make deps` " +
		"(scripts/deps.sh installs Debian's chromium package)")
	return ""
}

// repoRoot is the directory of go.mod above the test's working directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// screenshotDir is $CRM_SCREENSHOT_DIR (relative paths are taken from the repository
// root), default screenshots/ at the repository root. It is created when missing.
func screenshotDir(t *testing.T) string {
	t.Helper()
	root := repoRoot(t)
	dir := os.Getenv("CRM_SCREENSHOT_DIR")
	switch {
	case dir == "":
		dir = filepath.Join(root, "screenshots")
	case !filepath.IsAbs(dir):
		dir = filepath.Join(root, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("screenshot directory: %v", err)
	}
	return dir
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

var apiLine = regexp.MustCompile(`API (http://\S+)\s+\(token, shown once: ([0-9a-fA-F]+)\)`)

// demoRun is a demo serving its API and pages after its batch finished.
type demoRun struct {
	Base    string
	Token   string
	Summary demo.Summary
}

// startDemo runs the demo in-process until the test ends and waits for its batch to finish.
func startDemo(t *testing.T) *demoRun {
	t.Helper()
	dataDir := t.TempDir() // registered before the cleanup below, so removed after the demo stopped
	progress, out := &syncBuffer{}, &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	addr := freeAddr(t) // the demo falls back to another free port when this one got taken
	done := make(chan error, 1)
	go func() {
		_, err := demo.Run(ctx, demo.Options{Exit: false, JSON: true, ListenAddr: addr, DataDir: dataDir, Out: out, Progress: progress})
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("demo.Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("demo.Run did not return within 30s of cancellation")
		}
	})

	// The demo prints "still serving on ..." after it wrote the summary to Out.
	deadline := time.After(4 * time.Minute)
	for !strings.Contains(progress.String(), "still serving on") {
		select {
		case err := <-done:
			done <- err // for the cleanup
			t.Fatalf("demo.Run returned before serving: %v\nprogress:\n%s", err, progress.String())
		case <-deadline:
			t.Fatalf("the demo batch did not finish within 4 minutes\nprogress:\n%s", progress.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	m := apiLine.FindStringSubmatch(progress.String())
	if m == nil {
		t.Fatalf("no API address and token in the demo's progress output:\n%s", progress.String())
	}
	r := &demoRun{Base: m[1], Token: m[2]}
	if err := json.Unmarshal([]byte(out.String()), &r.Summary); err != nil {
		t.Fatalf("demo summary: %v\n%s", err, out.String())
	}
	t.Logf("demo batch %s finished %s in %.1fs; serving on %s", r.Summary.BatchID, r.Summary.Status, r.Summary.WallSeconds, r.Base)
	return r
}

// writeShot writes a screenshot into dir.
func writeShot(t *testing.T, dir, name string, png []byte) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", p, len(png))
}

// batchRow is one row of the batch list, as the browser shows it.
type batchRow struct {
	Name        string `json:"name"`
	Status      string `json:"status"`
	StatusClass string `json:"statusClass"`
	Items       string `json:"items"`
	Counts      string `json:"counts"`
}

// itemRow is one row of the batch detail's item table, as the browser shows it.
type itemRow struct {
	Name        string `json:"name"`
	Models      string `json:"models"`
	Status      string `json:"status"`
	StatusClass string `json:"statusClass"`
	Failure     string `json:"failure"`
	FailureText string `json:"failureText"`
}

const itemRowsJS = `Array.from(document.querySelectorAll('main > table:first-of-type > tbody > tr')).map(tr => {
	const td = tr.querySelectorAll(':scope > td');
	const st = td[6].querySelector('span.b');
	const fc = td[7].querySelector('span.b.fail');
	const a = td[1].querySelector('a');
	return {name: a ? a.innerText : '', models: td[3].innerText, status: st ? st.innerText : '',
		statusClass: st ? st.className : '', failure: fc ? fc.innerText : '', failureText: td[7].innerText};
})`

func batchRowJS(id string) string {
	return fmt.Sprintf(`(() => {
	const a = document.querySelector('main table tbody a[href="/batches/%s"]');
	if (!a) return null;
	const td = a.closest('tr').querySelectorAll(':scope > td');
	const st = td[3].querySelector('span.b');
	return {name: a.innerText, status: st ? st.innerText : '', statusClass: st ? st.className : '',
		items: td[4].innerText, counts: td[5].innerText};
})()`, id)
}

func hasClass(classes, c string) bool { return slices.Contains(strings.Fields(classes), c) }

// TestBatchPagesInChromium logs in with the demo's token in headless Chromium, checks the
// batch list and the batch detail (English, then Chinese) and saves full-page screenshots.
func TestBatchPagesInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo and a browser")
	}
	chromium := chromiumPath(t)
	shots := screenshotDir(t)
	if out, err := exec.Command("fc-list", ":lang=zh").Output(); err != nil || len(bytes.TrimSpace(out)) == 0 {
		t.Log("warning: no CJK font known to fontconfig; batch-zh.png will show boxes instead of Chinese text (run `make deps`)")
	}
	d := startDemo(t)
	if d.Summary.Status != store.BatchPartiallySucceeded {
		t.Fatalf("demo batch status %q, want %q", d.Summary.Status, store.BatchPartiallySucceeded)
	}
	batchID := d.Summary.BatchID
	expected := demo.Expected()

	chromeOut := &syncBuffer{}
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.WindowSize(1440, 900),
		chromedp.CombinedOutput(chromeOut),
	)
	ctx, cancelTimeout := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancelTimeout()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc() // waits for the browser to exit, before the user data dir is removed
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()

	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v\nchromium output:\n%s", what, err, chromeOut.String())
		}
	}
	location := func(want string) {
		t.Helper()
		loc, err := chromedp.Run(bctx, chromedp.Location())
		must("location", err)
		if loc != want {
			t.Fatalf("browser is at %s, want %s", loc, want)
		}
	}
	bodyText := func() string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.body.innerText`))
		must("read the page text", err)
		return s
	}
	shoot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100)) // quality 100 = PNG
		must("screenshot "+name, err)
		writeShot(t, shots, name, png)
	}

	// Log in: the form posts the token and redirects to the batch list.
	must("open the login page", chromedp.Do(bctx,
		chromedp.Navigate(d.Base+"/login?lang=en"),
		chromedp.WaitVisible(chromedp.ID("token")),
	))
	must("log in", chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.ID("token"), d.Token),
		chromedp.Click(chromedp.CSS(`.login button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`form.filters`)),
	))
	location(d.Base + "/batches")

	// Batch list.
	row, err := chromedp.Run(bctx, chromedp.Evaluate[*batchRow](batchRowJS(batchID)))
	must("read the batch row", err)
	if row == nil {
		t.Fatalf("batch %s is not on the batch list:\n%s", batchID, bodyText())
	}
	wantCounts := map[string]int{}
	for _, e := range expected {
		wantCounts[e[0]]++
	}
	if row.Name != "demo" || row.Status != "partially succeeded" || !hasClass(row.StatusClass, "s-"+store.BatchPartiallySucceeded) ||
		row.Items != fmt.Sprint(len(expected)) {
		t.Errorf("batch list row = %+v, want name demo, status \"partially succeeded\" (class s-%s), %d items",
			*row, store.BatchPartiallySucceeded, len(expected))
	}
	for st, n := range wantCounts {
		if want := fmt.Sprintf("%s %d", strings.ReplaceAll(st, "_", " "), n); !strings.Contains(row.Counts, want) {
			t.Errorf("batch list counts %q lack %q", row.Counts, want)
		}
	}
	shoot("batches.png")

	// Batch detail, reached through the list's link.
	must("open the batch detail", chromedp.Do(bctx,
		chromedp.Click(chromedp.CSS(`main table tbody a[href="/batches/`+batchID+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`dl.kv`)),
	))
	location(d.Base + "/batches/" + batchID)
	h1, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(`main h1`)))
	must("read the heading", err)
	if !strings.Contains(h1, batchID) || !strings.Contains(h1, "partially succeeded") {
		t.Errorf("batch heading %q lacks the id and the state \"partially succeeded\"", h1)
	}
	items, err := chromedp.Run(bctx, chromedp.Evaluate[[]itemRow](itemRowsJS))
	must("read the item rows", err)
	if len(items) != len(expected) {
		t.Errorf("batch detail shows %d items, want %d", len(items), len(expected))
	}
	byName := map[string]itemRow{}
	for _, it := range items {
		byName[it.Name] = it
		want, ok := expected[it.Name]
		if !ok {
			t.Errorf("unexpected item row %q", it.Name)
			continue
		}
		if !hasClass(it.StatusClass, "s-"+want[0]) || it.Status != strings.ReplaceAll(want[0], "_", " ") {
			t.Errorf("item %q shows state %q (class %q), want %s", it.Name, it.Status, it.StatusClass, want[0])
		}
		if it.Failure != want[1] {
			t.Errorf("item %q shows failure class %q, want %q", it.Name, it.Failure, want[1])
		}
	}
	kimi := byName["kimi misspelled models"]
	for _, want := range []string{"kimi-k2-6 → kimi-k2.6 (separator)", "kimi-k3 (case)"} {
		if !strings.Contains(kimi.Models, want) {
			t.Errorf("kimi misspelled models: corrections %q lack %q", kimi.Models, want)
		}
	}
	if fc := byName["deepseek invalid key"].FailureText; !strings.Contains(fc, "invalid key") {
		t.Errorf("deepseek invalid key: failure cell %q lacks the label \"invalid key\"", fc)
	}
	text := bodyText()
	for _, want := range []string{"kimi-k2.6", "separator", "invalid_key", "no_quota", "ready", "failed", "partially succeeded"} {
		if !strings.Contains(text, want) {
			t.Errorf("batch detail lacks %q", want)
		}
	}
	shoot("batch.png")

	// The same page in Chinese, through the header's language link.
	must("switch to Chinese", chromedp.Do(bctx,
		chromedp.Click(chromedp.CSS(`header a[href*="lang=zh"]`)),
		chromedp.WaitReady(chromedp.CSS(`html[lang="zh-CN"]`)),
		chromedp.WaitVisible(chromedp.CSS(`dl.kv`)),
	))
	location(d.Base + "/batches/" + batchID + "?lang=zh")
	h1, err = chromedp.Run(bctx, chromedp.Text(chromedp.CSS(`main h1`)))
	must("read the heading", err)
	if !strings.Contains(h1, "批次") || !strings.Contains(h1, "部分成功") {
		t.Errorf("Chinese batch heading %q lacks 批次 and 部分成功", h1)
	}
	items, err = chromedp.Run(bctx, chromedp.Evaluate[[]itemRow](itemRowsJS))
	must("read the item rows", err)
	for _, it := range items {
		switch it.Name {
		case "kimi misspelled models":
			if !strings.Contains(it.Models, "kimi-k2-6 → kimi-k2.6 (分隔符)") || it.Status != "就绪" {
				t.Errorf("Chinese kimi misspelled models row: models %q, state %q; want the 分隔符 correction and 就绪", it.Models, it.Status)
			}
		case "deepseek invalid key":
			if it.Failure != "invalid_key" || !strings.Contains(it.FailureText, "密钥无效") || it.Status != "失败" {
				t.Errorf("Chinese deepseek invalid key row: failure %q (%q), state %q; want invalid_key 密钥无效, 失败", it.Failure, it.FailureText, it.Status)
			}
		}
	}
	text = bodyText()
	for _, want := range []string{"批次", "就绪", "失败", "分隔符", "额度或余额不足", "English"} {
		if !strings.Contains(text, want) {
			t.Errorf("Chinese batch detail lacks %q", want)
		}
	}
	shoot("batch-zh.png")
}
