package bench

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// resolveBinaries checks the helper binaries exist and makes their paths absolute, and
// finds redis-server on PATH when none was given.
func resolveBinaries(o *Options) error {
	for _, b := range []*string{&o.APIBin, &o.WorkerBin, &o.SimBin} {
		if _, err := os.Stat(*b); err != nil {
			return fmt.Errorf("%s: %w\nhint: build the binaries first: CGO_ENABLED=0 go build -o bin/ ./cmd/api ./cmd/worker ./cmd/crmsim", *b, err)
		}
		if abs, err := filepath.Abs(*b); err == nil {
			*b = abs
		}
	}
	if o.RedisBin == "" {
		var err error
		if o.RedisBin, err = exec.LookPath("redis-server"); err != nil {
			return errors.New("redis-server is not on PATH (pass --redis-server)")
		}
	}
	return nil
}
