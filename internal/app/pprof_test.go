package app

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

// Profiles expose memory and stacks: CRM_PPROF_ADDR serves only on loopback, and an
// empty value serves nothing.
func TestServePprofOnlyOnLoopback(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, addr := range []string{"0.0.0.0:6061", ":6061", "10.0.0.1:6061", "example.com:6061", "nonsense"} {
		if c, err := ServePprof(addr, log); err == nil {
			c.Close()
			t.Errorf("CRM_PPROF_ADDR=%s accepted", addr)
		}
	}
	c, err := ServePprof("", log)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err = ServePprof(addr, log)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := http.Get("http://" + addr + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "goroutine") {
		t.Fatalf("GET /debug/pprof/: %d %.200s", resp.StatusCode, body)
	}
}
