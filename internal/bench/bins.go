package bench

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// BuildCommand builds the binaries the bench runs (and crmctl itself) into ./bin.
const BuildCommand = "CGO_ENABLED=0 go build -o bin/ ./cmd/api ./cmd/worker ./cmd/crmsim ./cmd/crmctl"

// searchDir is a directory the helper binaries are looked for in.
type searchDir struct {
	path string
	why  string // "beside crmctl", "./bin"
}

// searchDirs lists where the helper binaries are looked for, in order: beside the running
// executable (exe, symlinks resolved, so a crmctl linked into PATH finds the binaries it
// was built with), then wd/bin.
func searchDirs(exe, wd string) []searchDir {
	var dirs []searchDir
	if exe != "" {
		if r, err := filepath.EvalSymlinks(exe); err == nil {
			exe = r
		}
		if abs, err := filepath.Abs(exe); err == nil {
			exe = abs
		}
		dirs = append(dirs, searchDir{filepath.Dir(exe), "beside " + filepath.Base(exe)})
	}
	if bin := filepath.Join(wd, "bin"); len(dirs) == 0 || dirs[0].path != bin {
		dirs = append(dirs, searchDir{bin, "./bin"})
	}
	return dirs
}

// isExecutable reports whether path is a regular file someone may execute.
func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
}

// locate fills in the paths of the api, worker and crmsim binaries: a path given with
// --api-bin, --worker-bin or --crmsim-bin must exist; an empty one is looked for in
// searchDirs(exe, wd). The error names every binary missing, the places looked at and
// the build command.
func locate(o *Options, exe, wd string) error {
	dirs := searchDirs(exe, wd)
	var missing, flags []string
	for _, b := range []struct {
		path       *string
		name, flag string
	}{{&o.APIBin, "api", "--api-bin"}, {&o.WorkerBin, "worker", "--worker-bin"}, {&o.SimBin, "crmsim", "--crmsim-bin"}} {
		if *b.path != "" {
			p := *b.path
			if !filepath.IsAbs(p) {
				p = filepath.Join(wd, p)
			}
			if !isExecutable(p) {
				return fmt.Errorf("%s %s: not an executable file\nhint: build the binaries: %s", b.flag, *b.path, BuildCommand)
			}
			*b.path = p
			continue
		}
		found := false
		for _, d := range dirs {
			if p := filepath.Join(d.path, b.name); isExecutable(p) {
				*b.path, found = p, true
				break
			}
		}
		if !found {
			missing, flags = append(missing, b.name), append(flags, b.flag)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	var where []string
	for _, d := range dirs {
		where = append(where, fmt.Sprintf("  %s/ (%s)", d.path, d.why))
	}
	return fmt.Errorf("%s not found; looked in:\n%s\nbuild them with:\n  %s\nor pass %s",
		strings.Join(missing, ", "), strings.Join(where, "\n"), BuildCommand, strings.Join(flags, ", "))
}

// resolveBinaries finds the helper binaries (beside the running executable, then ./bin,
// unless given) and redis-server on PATH when none was given.
func resolveBinaries(o *Options) error {
	exe, _ := os.Executable()
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	if err := locate(o, exe, wd); err != nil {
		return err
	}
	if o.RedisBin == "" {
		var err error
		if o.RedisBin, err = exec.LookPath("redis-server"); err != nil {
			return errors.New("redis-server is not on PATH (pass --redis-server)")
		}
	}
	if o.DatabaseURL != "" && o.PsqlBin == "" {
		var err error
		if o.PsqlBin, err = exec.LookPath("psql"); err != nil {
			return errors.New("psql is not on PATH (pass --psql): --database-url creates and drops its database with it")
		}
	}
	return nil
}
