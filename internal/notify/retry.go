package notify

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Policy defaults: 8 attempts over about 20 minutes.
const (
	DefaultAttempts      = 8
	DefaultInitial       = 5 * time.Second
	DefaultMaxDelay      = 10 * time.Minute
	DefaultRetryAfterCap = 15 * time.Minute
)

// Policy is the bounded retry schedule of one delivery: exponential backoff with equal
// jitter (the n-th wait is between half and all of Initial·2ⁿ⁻¹, at most MaxDelay),
// never shorter than a receiver's Retry-After hint (itself capped at RetryAfterCap), and
// no further attempt after a permanent failure or MaxAttempts attempts. Zero fields take
// the defaults.
type Policy struct {
	MaxAttempts   int
	Initial       time.Duration
	MaxDelay      time.Duration
	RetryAfterCap time.Duration
	// Rand returns a number in [0,1) for the jitter; nil = math/rand/v2.
	Rand func() float64
}

func (p Policy) withDefaults() Policy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultAttempts
	}
	if p.Initial <= 0 {
		p.Initial = DefaultInitial
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = DefaultMaxDelay
	}
	if p.RetryAfterCap <= 0 {
		p.RetryAfterCap = DefaultRetryAfterCap
	}
	if p.Rand == nil {
		p.Rand = rand.Float64
	}
	return p
}

// Next says, after attempt number attempt (1 for the first) failed with err, whether to
// try again and after how long. An outbox stores the attempt count and the time it gives.
func (p Policy) Next(attempt int, err error) (time.Duration, bool) {
	p = p.withDefaults()
	var de *DeliveryError
	if !errors.As(err, &de) || !de.Retryable || attempt >= p.MaxAttempts {
		return 0, false
	}
	base := p.Initial
	for i := 1; i < attempt && base < p.MaxDelay; i++ {
		base *= 2
	}
	if base > p.MaxDelay {
		base = p.MaxDelay
	}
	d := base/2 + time.Duration(p.Rand()*float64(base/2))
	if ra := min(de.RetryAfter, p.RetryAfterCap); ra > d {
		d = ra
	}
	return d, true
}

// Notifier delivers an event to a target in-process, retrying by its policy: for callers
// without an outbox (a "send test message" button). An outbox instead calls Format, Send
// and Policy.Next itself, one attempt per run, so that a restart loses nothing.
type Notifier struct {
	Sender Poster
	Policy Policy
	// Now is the clock for signatures; nil = time.Now.
	Now func() time.Time
	// Wait waits d or until ctx ends; nil = a timer.
	Wait func(ctx context.Context, d time.Duration) error
}

// Deliver formats and sends e to t until it is delivered, fails permanently or the
// policy gives up. It returns the number of attempts made and the last error.
func (n *Notifier) Deliver(ctx context.Context, e Event, t Target) (int, error) {
	now, wait := n.Now, n.Wait
	if now == nil {
		now = time.Now
	}
	if wait == nil {
		wait = sleep
	}
	for attempt := 1; ; attempt++ {
		r, err := Format(e, t, now())
		if err != nil {
			return attempt - 1, err
		}
		err = n.Sender.Send(ctx, r)
		if err == nil {
			return attempt, nil
		}
		d, again := n.Policy.Next(attempt, err)
		if !again {
			return attempt, err
		}
		if werr := wait(ctx, d); werr != nil {
			return attempt, err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
