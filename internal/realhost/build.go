// Package realhost runs real sub2api hosts, built from their backend source archives, for
// the real-host test suite (`make host-test`). Build compiles an archive once and caches the
// result by the archive's content hash outside the work tree; Start runs one host per test
// on a free loopback port with its own PostgreSQL database (internal/testpg) and its own
// redis-server (internal/testredis), bootstraps the admin API key the way an operator does
// (log in, accept the compliance text where the version asks for it, regenerate the key) and
// tears everything down when the test ends. It never writes to a database it did not create.
//
// What the archives are and where they come from is the caller's business: the suite reads
// the path or glob in CRM_SUB2API_SRC (EnvSource) and nothing else.
package realhost

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// EnvSource names the environment variable that holds the sub2api backend source
// archive(s): one path, a glob, or several of either separated by spaces.
const EnvSource = "CRM_SUB2API_SRC"

// EnvCache overrides where built hosts are cached (default: the user cache directory,
// $XDG_CACHE_HOME or ~/.cache, then cn-relay-manager/sub2api).
const EnvCache = "CRM_SUB2API_CACHE"

// Archives returns the archives spec names, sorted and without duplicates. spec is a path,
// a glob, or several separated by white space; a pattern that matches nothing adds nothing.
func Archives(spec string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, f := range strings.Fields(spec) {
		matches, err := filepath.Glob(f)
		if err != nil {
			return nil, fmt.Errorf("%s: bad pattern %q: %w", EnvSource, f, err)
		}
		for _, m := range matches {
			if st, err := os.Stat(m); err != nil || st.IsDir() {
				continue
			}
			abs, err := filepath.Abs(m)
			if err != nil {
				return nil, err
			}
			if !seen[abs] {
				seen[abs] = true
				out = append(out, abs)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// Binary is a built host: the server binary and the files it reads at run time.
type Binary struct {
	Archive string // the source archive it was built from
	Version string // backend/cmd/server/VERSION of the archive
	Dir     string // working directory to run it from (holds resources/)
	Path    string // the server binary
	Cached  bool   // true when the build came from the cache
}

// CacheRoot is where built hosts are kept, one directory per archive content hash.
func CacheRoot() (string, error) {
	if d := os.Getenv(EnvCache); d != "" {
		return d, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory for built hosts (set %s): %w", EnvCache, err)
	}
	return filepath.Join(base, "cn-relay-manager", "sub2api"), nil
}

// buildMu serialises builds inside one process: a build uses every core for minutes.
var buildMu sync.Mutex

// Build returns the host built from archive, building it on first use. The cache key is the
// archive's SHA-256, so an edited archive is built again and an unchanged one never is. A
// build goes to a temporary directory that is renamed into place when complete: a crashed
// or concurrent build never leaves a half-built entry behind.
func Build(archive string, log io.Writer) (*Binary, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	if log == nil {
		log = io.Discard
	}
	sum, err := fileSHA256(archive)
	if err != nil {
		return nil, err
	}
	root, err := CacheRoot()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, sum)
	if b, err := load(archive, dir); err == nil {
		b.Cached = true
		return b, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("create build cache %s: %w", root, err)
	}
	tmp, err := os.MkdirTemp(root, sum[:16]+".building-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, "src")
	if err := extract(archive, src); err != nil {
		return nil, err
	}
	backend, err := findBackend(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", archive, err)
	}
	fmt.Fprintf(log, "realhost: building %s (first use; the build is cached in %s)\n", filepath.Base(archive), dir)
	cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(tmp, "sub2api"), "./cmd/server")
	cmd.Dir = backend
	// The host's own module, never the project's workspace or vendor settings.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-buildvcs=false")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("build %s: %w", archive, err)
	}
	if err := os.Rename(filepath.Join(backend, "resources"), filepath.Join(tmp, "resources")); err != nil {
		return nil, fmt.Errorf("%s: keep the bundled resources: %w", archive, err)
	}
	if err := os.Rename(filepath.Join(backend, "cmd", "server", "VERSION"), filepath.Join(tmp, "VERSION")); err != nil {
		return nil, fmt.Errorf("%s: no backend/cmd/server/VERSION: %w", archive, err)
	}
	if err := os.RemoveAll(src); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil && !dirExists(dir) {
		return nil, fmt.Errorf("store the build in %s: %w", dir, err)
	}
	return load(archive, dir)
}

// load returns the cached build in dir, or an error when it is absent or incomplete.
func load(archive, dir string) (*Binary, error) {
	v, err := os.ReadFile(filepath.Join(dir, "VERSION"))
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "sub2api")
	if st, err := os.Stat(bin); err != nil || st.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("no binary in %s", dir)
	}
	return &Binary{Archive: archive, Version: strings.TrimSpace(string(v)), Dir: dir, Path: bin}, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// extract unpacks a .tar.gz into dir. Entry names are cleaned against dir, so no entry
// lands outside it.
func extract(archive, dir string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: not a gzip archive: %w", archive, err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", archive, err)
		}
		target := filepath.Join(dir, filepath.Clean("/"+h.Name))
		if !strings.HasPrefix(target, filepath.Clean(dir)+string(os.PathSeparator)) {
			return fmt.Errorf("%s: entry %q escapes the archive", archive, h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o755|0o600)
			if err != nil {
				return err
			}
			_, cerr := io.Copy(out, tr)
			if err := out.Close(); cerr == nil {
				cerr = err
			}
			if cerr != nil {
				return fmt.Errorf("%s: %s: %w", archive, h.Name, cerr)
			}
		}
		// Links and devices are not part of a backend source tree; skip them.
	}
}

// findBackend returns the directory of the host's Go module: <top>/backend or backend.
func findBackend(src string) (string, error) {
	candidates := []string{filepath.Join(src, "backend")}
	entries, _ := os.ReadDir(src)
	for _, e := range entries {
		if e.IsDir() {
			candidates = append(candidates, filepath.Join(src, e.Name(), "backend"))
		}
	}
	for _, c := range candidates {
		if _, err := os.Stat(filepath.Join(c, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(c, "cmd", "server")); err == nil {
				return c, nil
			}
		}
	}
	return "", errors.New("no backend/go.mod with cmd/server: not a sub2api backend source archive")
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}
