package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestBenchHelpExplainsTheBound(t *testing.T) {
	var out, errb bytes.Buffer
	code := Run(context.Background(), []string{"bench", "-h"}, strings.NewReader(""), &out, &errb)
	if code != ExitOK || !strings.Contains(errb.String(), "bound = max(N·S/C") {
		t.Fatalf("exit %d, help:\n%s", code, errb.String())
	}
	code = Run(context.Background(), []string{"bench", "--items", "0"}, strings.NewReader(""), &out, &errb)
	if code != ExitUsage {
		t.Fatalf("--items 0: exit %d", code)
	}
}
