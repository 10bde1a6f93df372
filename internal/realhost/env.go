package realhost

import (
	"os"
	"testing"
)

// FromEnv builds (or takes from the cache) every archive CRM_SUB2API_SRC names. It fails the
// test when the variable is unset or matches nothing: the real-host suite is only run on
// purpose (`make host-test` checks both before it starts the suite).
func FromEnv(t testing.TB) []*Binary {
	t.Helper()
	spec := os.Getenv(EnvSource)
	if spec == "" {
		t.Fatalf("%s is not set: point it at sub2api backend source archives (a path or a glob)", EnvSource)
	}
	archives, err := Archives(spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(archives) == 0 {
		t.Fatalf("%s=%q matches no archive", EnvSource, spec)
	}
	var out []*Binary
	for _, a := range archives {
		b, err := Build(a, testWriter{t})
		if err != nil {
			t.Fatal(err)
		}
		if b.Cached {
			t.Logf("realhost: %s %s from the build cache %s", b.Version, a, b.Dir)
		}
		out = append(out, b)
	}
	return out
}

// testWriter sends build output to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}
