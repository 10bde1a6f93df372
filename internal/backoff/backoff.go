// Package backoff is the one retry delay policy of the control plane. Every retry of a
// host or upstream call waits by it: the host client's own retries of a dropped
// connection or a busy idempotency key, a pipeline step retried after a transient host or
// upstream failure, and a queued task that returned an error. The delay doubles per
// attempt from Base up to Max, never undercuts the server's Retry-After hint, and may be
// spread by Jitter so that many retries started together do not arrive together.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Policy is one use of the formula: delay(n) = min(Base·2ⁿ, Max) · (1 + Jitter·r), r
// uniform in [0, 1), at least the hint. Attempt n counts from 0 (the first retry).
type Policy struct {
	Base time.Duration
	Max  time.Duration
	// Jitter is the fraction of the delay added at random (0 = exact delays, as the
	// pipeline's retries are shown to operators and scheduled).
	Jitter float64
	// Rand returns a number in [0, 1); nil = math/rand/v2.
	Rand func() float64
}

// The policies in use.
var (
	// Host spaces the host client's in-call retries: transient failures of the admin and
	// user API and our own write still in flight (409 IDEMPOTENCY_IN_PROGRESS).
	Host = Policy{Base: 200 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.5}
	// Queue spaces the retries of a queued task whose handler returned an error (the
	// database or Redis unavailable, a step interrupted by a shutdown).
	Queue = Policy{Base: time.Second, Max: 10 * time.Second}
)

// Step is the policy of a pipeline step retried after a transient host or upstream
// failure: base (the batch's or the process's setting) doubled per retry, up to 32×.
func Step(base time.Duration) Policy {
	if base <= 0 {
		base = time.Second
	}
	return Policy{Base: base, Max: base << 5}
}

// Delay is the wait before retry number attempt (0 for the first), at least hint.
func (p Policy) Delay(attempt int, hint time.Duration) time.Duration {
	d := p.Base
	if d <= 0 {
		d = time.Second
	}
	for i := 0; i < attempt && (p.Max <= 0 || d < p.Max); i++ {
		d *= 2
	}
	if p.Max > 0 && d > p.Max {
		d = p.Max
	}
	if p.Jitter > 0 {
		r := p.Rand
		if r == nil {
			r = rand.Float64
		}
		d += time.Duration(p.Jitter * r() * float64(d))
	}
	return max(d, hint)
}
