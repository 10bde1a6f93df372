// Package upstreamsim simulates the upstream providers of the catalog (DeepSeek, Kimi,
// MiniMax, GLM, Qwen, ...) for tests and the demo: each serves its real model ids, chat
// completions (plain, SSE and tool calls), /responses and the Anthropic endpoint where the
// provider has them, the balance endpoint where the provider has one, and answers with the
// provider's real error bodies depending on the mode of the key used.
package upstreamsim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/catalog"
)

// KeyMode decides how the simulator treats a key.
type KeyMode string

// Key modes.
const (
	ModeOK          KeyMode = "ok"
	ModeInvalid     KeyMode = "invalid"      // the provider's 401
	ModeNoQuota     KeyMode = "no_quota"     // the provider's no-balance answer on inference
	ModeRateLimited KeyMode = "rate_limited" // 429 with Retry-After on inference
	ModeBanned      KeyMode = "banned"       // 403 account suspended, everywhere
	ModeErrorIn200  KeyMode = "error_in_200" // HTTP 200 carrying the provider's error body
	ModeChatOnly    KeyMode = "chat_only"    // no /responses, no Anthropic endpoint
	ModeSlow        KeyMode = "slow"         // every answer delayed by Options.SlowDelay
)

// RelayPrefix is the path prefix of the generic OpenAI-compatible relay.
const RelayPrefix = "relay"

// DefaultSlowDelay is the delay of ModeSlow when Options.SlowDelay is zero.
const DefaultSlowDelay = 2 * time.Second

// RetryAfterSeconds is the Retry-After value sent with simulated 429 rate limits.
const RetryAfterSeconds = 7

// DefaultBalance is the balance a key has until SetBalance changes it.
const DefaultBalance = 100.0

// Options configure a Server.
type Options struct {
	Latency time.Duration // added to every answer
	Catalog *catalog.Catalog
	// SlowDelay is the extra delay for ModeSlow keys (default DefaultSlowDelay).
	SlowDelay time.Duration
	// RejectMaxCompletionTokens lists provider ids whose chat endpoint answers 400 to
	// max_completion_tokens, to exercise the prober's max_tokens fallback.
	RejectMaxCompletionTokens []string
}

// Server is a set of simulated providers behind one HTTP handler. It is safe for
// concurrent use.
type Server struct {
	opts Options
	cat  *catalog.Catalog
	mu   sync.RWMutex
	keys map[string]KeyMode
	// balances holds the balances set with SetBalance; other keys have DefaultBalance.
	balances map[string]float64
	calls    atomic.Int64
	seq      atomic.Int64

	url  string
	srv  *http.Server
	done chan struct{}
}

// New returns a Server that is not listening; use it as an http.Handler or call Start.
func New(opts Options) *Server {
	s := &Server{opts: opts, cat: opts.Catalog, keys: map[string]KeyMode{}, balances: map[string]float64{}}
	if s.cat == nil {
		s.cat = catalog.Default()
	}
	if s.opts.SlowDelay <= 0 {
		s.opts.SlowDelay = DefaultSlowDelay
	}
	return s
}

// Start returns a Server listening on 127.0.0.1 on a free port.
func Start(opts Options) (*Server, error) {
	s := New(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("upstreamsim: listen: %w", err)
	}
	s.url = "http://" + ln.Addr().String()
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			// Nothing to report to: tests notice the failing calls.
			_ = err
		}
	}()
	return s, nil
}

// URL is the root URL of a started server ("" before Start).
func (s *Server) URL() string { return s.url }

// Close stops a started server and waits for its goroutine.
func (s *Server) Close() {
	if s.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close()
	}
	<-s.done
}

// AddKey registers a key with a mode.
func (s *Server) AddKey(key string, mode KeyMode) { s.SetKeyMode(key, mode) }

// SetKeyMode changes the mode of a key (e.g. its quota runs out after import).
func (s *Server) SetKeyMode(key string, mode KeyMode) {
	s.mu.Lock()
	s.keys[key] = mode
	s.mu.Unlock()
}

// SetMode is SetKeyMode: switch a key to ModeNoQuota (402 and the provider's other
// no-balance answers on inference) and back to ModeOK.
func (s *Server) SetMode(key string, mode KeyMode) { s.SetKeyMode(key, mode) }

// SetBalance sets the balance the key's balance endpoint reports (in the currency of the
// provider's site). At or below zero, inference answers like ModeNoQuota, as the real
// providers do once the money is gone, until the balance is positive again.
func (s *Server) SetBalance(key string, amount float64) {
	s.mu.Lock()
	s.balances[key] = amount
	s.mu.Unlock()
}

// balance is what the key's balance endpoint reports: a ModeNoQuota key has nothing left.
func (s *Server) balance(key string, mode KeyMode) float64 {
	s.mu.RLock()
	b, ok := s.balances[key]
	s.mu.RUnlock()
	if !ok {
		b = DefaultBalance
	}
	if mode == ModeNoQuota && b > 0 {
		return 0
	}
	return b
}

func (s *Server) mode(key string) (KeyMode, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, ok := s.keys[key]
	return m, ok
}

// BaseURL is the OpenAI-compatible base of the simulated provider: URL()+"/"+id+default
// path, and URL()+"/relay/v1" for the generic relay.
func (s *Server) BaseURL(providerID string) string {
	if providerID == catalog.OpenAICompatible || providerID == "" {
		return s.url + "/" + RelayPrefix + "/v1"
	}
	p, ok := s.cat.Provider(providerID)
	if !ok {
		return s.url + "/" + providerID
	}
	return s.url + "/" + providerID + p.DefaultPath
}

// AnthropicBaseURL is the simulated provider's Anthropic base, "" if it has none.
func (s *Server) AnthropicBaseURL(providerID string) string {
	p, ok := s.cat.Provider(providerID)
	if !ok {
		return ""
	}
	return p.AnthropicBaseFor(s.BaseURL(providerID))
}

// Calls is the number of requests served.
func (s *Server) Calls() int { return int(s.calls.Load()) }
