package hostsim

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"
)

// Idempotency record states, as the hosts' idempotency store keeps them.
const (
	idemProcessing = iota
	idemSucceeded
	idemFailed
)

// The hosts' idempotency timings (sub2api DefaultIdempotencyConfig): a claim is held for
// at most 30 s while the request runs, and a failed request may not be repeated for 5 s.
const (
	idemProcessingTimeout = 30 * time.Second
	idemFailedBackoff     = 5 * time.Second
)

// DefaultIdempotentWrite is how long an idempotent write is in flight on the simulated
// host when Options.IdempotentWrite is zero.
const DefaultIdempotentWrite = 20 * time.Millisecond

type idemEntry struct {
	hash        [32]byte
	state       int
	lockedUntil time.Time
	status      int
	ctype       string
	body        []byte
}

// withIdempotency runs h under the Idempotency-Key contract of the hosts (scope separates
// routes and actors). Caller holds s.mu; it is released while the write is in flight.
//
//   - The first request claims the key ("processing") and runs for Options.IdempotentWrite;
//     another request with the same key and body meanwhile gets 409
//     IDEMPOTENCY_IN_PROGRESS with retry_after (metadata and Retry-After header).
//   - A success is stored: the same key and body replay it with X-Idempotency-Replayed:
//     true; the same key with another body is 409 IDEMPOTENCY_KEY_CONFLICT.
//   - A failure the service reported (a typed error or a 500, not a request-binding error)
//     leaves the key in a 5 s backoff: a repeat inside it is 409 IDEMPOTENCY_RETRY_BACKOFF,
//     a repeat after it runs again.
func (s *Server) withIdempotency(w http.ResponseWriter, r *http.Request, scope string, h func(w http.ResponseWriter, r *http.Request)) {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		h(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	sum := sha256.Sum256(canonicalJSON(body))
	id := scope + "\x00" + key
	now := s.now()
	if e, found := s.idem[id]; found {
		if e.hash != sum {
			typedErr(w, 409, "IDEMPOTENCY_KEY_CONFLICT", "idempotency key reused with different payload")
			return
		}
		switch {
		case e.state == idemSucceeded:
			w.Header().Set("Content-Type", e.ctype)
			w.Header().Set("X-Idempotency-Replayed", "true")
			w.WriteHeader(e.status)
			_, _ = w.Write(e.body)
			return
		case e.state == idemProcessing && e.lockedUntil.After(now):
			idemConflict(w, "IDEMPOTENCY_IN_PROGRESS", "idempotent request is still processing", e.lockedUntil.Sub(now))
			return
		case e.state == idemFailed && e.lockedUntil.After(now):
			idemConflict(w, "IDEMPOTENCY_RETRY_BACKOFF", "idempotent request is in retry backoff window", e.lockedUntil.Sub(now))
			return
		}
		// An expired claim or a failure whose backoff has passed: run it again.
	}
	e := &idemEntry{hash: sum, state: idemProcessing, lockedUntil: now.Add(idemProcessingTimeout)}
	s.idem[id] = e
	if d := s.idempotentWrite(); d > 0 {
		// The write is in flight: other requests are served meanwhile.
		s.mu.Unlock()
		time.Sleep(d)
		s.mu.Lock()
	}
	rec := httptest.NewRecorder()
	h(rec, r)
	res := rec.Result()
	for k, v := range res.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(res.StatusCode)
	_, _ = w.Write(rec.Body.Bytes())
	switch {
	case res.StatusCode >= 200 && res.StatusCode < 300:
		e.state, e.status, e.ctype, e.body = idemSucceeded, res.StatusCode, res.Header.Get("Content-Type"), rec.Body.Bytes()
	case bindingError(res.StatusCode, rec.Body.Bytes()):
		// Refused before the idempotency store was consulted: nothing is kept.
		delete(s.idem, id)
	default:
		e.state, e.lockedUntil = idemFailed, s.now().Add(idemFailedBackoff)
	}
}

// idempotentWrite is how long an idempotent write stays in flight.
func (s *Server) idempotentWrite() time.Duration {
	switch {
	case s.opts.IdempotentWrite < 0:
		return 0
	case s.opts.IdempotentWrite == 0:
		return DefaultIdempotentWrite
	}
	return s.opts.IdempotentWrite
}

// idemConflict writes the idempotency store's 409 with its retry hint in whole seconds
// (at least 1), in the body's metadata and in Retry-After; a fresh claim shows "30".
func idemConflict(w http.ResponseWriter, reason, msg string, wait time.Duration) {
	sec := strconv.Itoa(max(1, int(math.Ceil(wait.Seconds()))))
	w.Header().Set("Retry-After", sec)
	writeJSON(w, 409, map[string]any{"code": 409, "message": msg, "reason": reason, "metadata": map[string]any{"retry_after": sec}})
}

// bindingError recognises a request-binding failure: 400 without a reason.
func bindingError(status int, body []byte) bool {
	if status != http.StatusBadRequest {
		return false
	}
	var env struct {
		Reason string `json:"reason"`
	}
	return json.Unmarshal(body, &env) == nil && env.Reason == ""
}
