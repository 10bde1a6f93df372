package bench

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The profiler keeps taking consecutive windows until stopped, lets the window under way
// finish (net/http/pprof sends nothing for a profile whose client left) and names the
// files <proc>-cpu-<n>.pb.gz; the heap profile is <proc>-heap.pb.gz.
func TestPprofWindows(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	target := profTarget{name: "worker-2", addr: strings.TrimPrefix(srv.URL, "http://")}

	dir, err := checkPprofDir(filepath.Join(t.TempDir(), "pp"))
	if err != nil {
		t.Fatal(err)
	}
	p := startCPUProfiles(context.Background(), dir, time.Second, []profTarget{target})
	time.Sleep(1500 * time.Millisecond) // inside the second window
	t0 := time.Now()
	files, err := p.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(t0); waited < 200*time.Millisecond {
		t.Errorf("Stop returned after %s: it did not wait for the window under way", waited)
	}
	want := []string{filepath.Join(dir, "worker-2-cpu-1.pb.gz"), filepath.Join(dir, "worker-2-cpu-2.pb.gz")}
	if len(files) != 2 || files[0] != want[0] || files[1] != want[1] {
		t.Fatalf("files %v, want %v", files, want)
	}
	heap, err := heapProfile(context.Background(), dir, target)
	if err != nil || heap != filepath.Join(dir, "worker-2-heap.pb.gz") {
		t.Fatalf("heap %q %v", heap, err)
	}
	for _, f := range append(files, heap) {
		b, err := os.ReadFile(f)
		if err != nil || !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
			t.Errorf("%s is not a gzipped profile (%v)", f, err)
		}
	}
	// The directory now holds profiles: a second run must not mix its windows with these.
	if _, err := checkPprofDir(dir); err == nil || !strings.Contains(err.Error(), "already holds profiles") {
		t.Fatalf("reused --pprof directory: %v", err)
	}
}
