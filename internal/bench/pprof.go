package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// defaultPprofWindow is the length of one CPU profile. net/http/pprof ends a profile early
// when its client goes away and then sends nothing, so a run is covered by consecutive
// windows, the last of which is let finish (at most one window after the batch is done).
const defaultPprofWindow = 5 * time.Second

// profTarget is a process serving /debug/pprof on addr (CRM_PPROF_ADDR).
type profTarget struct {
	name string // "api", "worker", "worker-2"
	addr string // 127.0.0.1:PORT
}

// checkPprofDir creates dir and refuses one that already holds profiles: `go tool pprof`
// merges every file a glob names, and old windows would be counted with the new ones.
func checkPprofDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return "", fmt.Errorf("--pprof: %w", err)
	}
	old, _ := filepath.Glob(filepath.Join(abs, "*.pb.gz"))
	if len(old) > 0 {
		return "", fmt.Errorf("--pprof %s already holds profiles (%s, …): pass a new or empty directory", dir, filepath.Base(old[0]))
	}
	return abs, nil
}

// cpuProfiler collects consecutive CPU profiles of each target into
// dir/<name>-cpu-<n>.pb.gz until stopped.
type cpuProfiler struct {
	dir    string
	window time.Duration
	stop   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup

	mu    sync.Mutex
	files []string
	errs  []error
}

func startCPUProfiles(ctx context.Context, dir string, window time.Duration, targets []profTarget) *cpuProfiler {
	p := &cpuProfiler{dir: dir, window: window, stop: make(chan struct{})}
	secs := max(int(window/time.Second), 1)
	for _, t := range targets {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for n := 1; ; n++ {
				select {
				case <-p.stop:
					return
				default:
				}
				file := filepath.Join(dir, fmt.Sprintf("%s-cpu-%d.pb.gz", t.name, n))
				err := fetchProfile(ctx, t.addr, fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), file, time.Duration(secs)*time.Second+30*time.Second)
				p.mu.Lock()
				if err != nil {
					p.errs = append(p.errs, fmt.Errorf("%s CPU profile %d: %w", t.name, n, err))
				} else {
					p.files = append(p.files, file)
				}
				p.mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	return p
}

// Stop ends the collection: no new window starts, the windows under way finish. It
// returns the files written; calling it again does no harm.
func (p *cpuProfiler) Stop() ([]string, error) {
	p.once.Do(func() { close(p.stop) })
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	sort.Strings(p.files)
	return p.files, errors.Join(p.errs...)
}

// heapProfile saves the heap profile of t (after a GC) as dir/<name>-heap.pb.gz.
func heapProfile(ctx context.Context, dir string, t profTarget) (string, error) {
	file := filepath.Join(dir, t.name+"-heap.pb.gz")
	if err := fetchProfile(ctx, t.addr, "/debug/pprof/heap?gc=1", file, 30*time.Second); err != nil {
		return "", fmt.Errorf("%s heap profile: %w", t.name, err)
	}
	return file, nil
}

// fetchProfile GETs a profile from the pprof listener at addr into file.
func fetchProfile(ctx context.Context, addr, path, file string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		os.Remove(file)
		return err
	}
	return f.Close()
}
