package hostsim

import (
	"net/http"
	"sort"
	"sync"
)

// holdGate parks requests on arrival while a hold is on, so a test can pin work in flight
// (a worker blocked in a host call) for as long as it needs, instead of hoping that a
// kill or a wipe lands mid-step.
type holdGate struct {
	mu   sync.Mutex
	open chan struct{} // closed on release; nil while no hold is on
	held map[*http.Request]string
}

// Hold makes every request that arrives from now on wait, before the host does anything
// with it, until the returned release is called (release is idempotent). A held request
// whose client goes away meanwhile is dropped without effect.
func (s *Server) Hold() (release func()) {
	g := &s.hold
	g.mu.Lock()
	if g.open == nil {
		g.open = make(chan struct{})
	}
	ch := g.open
	g.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			if g.open == ch {
				g.open = nil
			}
			g.mu.Unlock()
			close(ch)
		})
	}
}

// Held returns the remote addresses ("ip:port") of the requests waiting in a hold, sorted.
func (s *Server) Held() []string {
	g := &s.hold
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]string, 0, len(g.held))
	for _, a := range g.held {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// waitHold parks r while a hold is on; it reports false when the client went away.
func (s *Server) waitHold(r *http.Request) bool {
	g := &s.hold
	g.mu.Lock()
	ch := g.open
	if ch == nil {
		g.mu.Unlock()
		return true
	}
	if g.held == nil {
		g.held = map[*http.Request]string{}
	}
	g.held[r] = r.RemoteAddr
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.held, r)
		g.mu.Unlock()
	}()
	select {
	case <-ch:
		return r.Context().Err() == nil
	case <-r.Context().Done():
		return false
	}
}
