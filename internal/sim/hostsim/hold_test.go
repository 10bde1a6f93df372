package hostsim

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// A hold parks requests before the host does anything; release lets them through, and a
// held request whose client gave up has no effect.
func TestHoldParksRequestsUntilRelease(t *testing.T) {
	s, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	release := s.Hold()
	done := make(chan int, 1)
	go func() {
		resp, err := http.Get(s.URL() + "/health")
		if err != nil {
			done <- -1
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	deadline := time.Now().Add(5 * time.Second)
	for len(s.Held()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("request never held")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case code := <-done:
		t.Fatalf("held request answered %d before release", code)
	case <-time.After(100 * time.Millisecond):
	}
	release()
	release() // idempotent
	if code := <-done; code != 200 {
		t.Fatalf("released request answered %d", code)
	}
	if h := s.Held(); len(h) != 0 {
		t.Fatalf("still held after release: %v", h)
	}

	// A client that gives up while held: its write never reaches the host.
	release = s.Hold()
	defer release()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", s.URL()+"/api/v1/admin/groups", nil)
	req.Header.Set("x-api-key", s.opts.AdminAPIKey)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	for len(s.Held()) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	groups := len(s.State().Groups)
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("cancelled request succeeded")
	}
	release()
	deadline = time.Now().Add(5 * time.Second)
	for len(s.Held()) != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := len(s.State().Groups); got != groups {
		t.Fatalf("a cancelled held request changed the host: %d groups, want %d", got, groups)
	}
}
