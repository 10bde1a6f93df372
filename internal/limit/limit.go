// Package limit caps concurrent work per key (a sub2api host, an upstream host) across
// every worker process with a Redis-based semaphore: a sorted set of leases scored by
// their expiry. A holder renews its lease while it works, so the lease can be short and a
// killed holder frees its slot within one lease instead of blocking the host for minutes.
package limit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// acquireScript removes expired leases, then takes a slot if one is free. Time comes from
// the Redis server so that processes with skewed clocks agree. When the cap is full and
// a waiter is named (ARGV[4]), the waiter joins the cap's wait list (KEYS[2], oldest
// first, once) in the same step, so that no release can slip between "full" and "wait";
// a waiter that gets its slot (woken, or run by other means) leaves the list, so that no
// later release spends its wake-up on it. It returns 1 (a slot taken), 0 (full) or, for a
// waiter, -1 - its place in the wait list (0 = next).
var acquireScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
  if ARGV[4] ~= '' then redis.call('ZREM', KEYS[2], ARGV[4]) end
  return 1
end
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[2], 'NX', now, ARGV[4])
  redis.call('PEXPIRE', KEYS[2], 600000)
  return -1 - redis.call('ZRANK', KEYS[2], ARGV[4])
end
return 0
`)

// releaseScript frees a slot and hands the wake-up to the oldest waiter, if any: it
// returns the waiter's name (or false). A process that cannot wake anyone (ARGV[2] not
// "1") leaves the list alone.
var popScript = redis.NewScript(`
local w = redis.call('ZPOPMIN', KEYS[1])
if w[1] then return w[1] end
return false
`)

var releaseScript = redis.NewScript(`
redis.call('ZREM', KEYS[1], ARGV[1])
if ARGV[2] ~= '1' then return false end
local w = redis.call('ZPOPMIN', KEYS[2])
if w[1] then return w[1] end
return false
`)

// renewScript extends a lease that still exists (a holder that was too slow to renew has
// lost its slot and must not resurrect it).
var renewScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[2])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 2)
  return 1
end
return 0
`)

// Semaphore hands out slots per key.
type Semaphore struct {
	Redis  redis.UniversalClient
	Prefix string        // key prefix, default "crm:limit:"
	Lease  time.Duration // lease of a slot, renewed every third of it while held; default 15 s
	Poll   time.Duration // wait between tries when full, default 100 ms
	// Outage is how long Acquire and release keep trying through Redis errors (a
	// Sentinel failover, a restart) before giving up; default 30 s. A release that
	// never lands would hold its slot for a whole lease.
	Outage time.Duration
	// Park bounds how long a step that joined a cap's wait list stays parked before it
	// runs again by itself (Busy.RetryIn when Queued), should its wake-up be lost; default
	// 5 minutes. A wake-up normally comes much sooner, when a slot is released; but a
	// holder that died frees its slot only when its lease expires, and then nobody is
	// woken. So the park grows with the waiter's place in the list: one lease for the
	// next in line, one more per cap's worth of waiters ahead (lease·(1 + place/limit)),
	// at most Park: the head of the list heals within a lease or two, and a long list
	// does not churn.
	Park time.Duration
	// Wake is told, in its own goroutine, the name of the oldest waiter of a cap when
	// one of its slots is released (TryAcquire with a waiter name): the queue runs that
	// task again. It returns false when the wake-up was not needed (the waiter's task is
	// queued already): the next waiter is woken instead. Nil = waiters are not woken
	// (they are retried by their caller).
	Wake func(key, waiter string) bool
}

// Busy is the error TryAcquire returns when a cap is full: the caller gives its worker
// slot back instead of waiting while holding it. Queued says the waiter joined the cap's
// wait list and will be woken (Semaphore.Wake) when a slot frees; otherwise the caller
// tries again after RetryIn.
type Busy struct {
	Key     string
	Limit   int
	Queued  bool
	RetryIn time.Duration
}

func (b *Busy) Error() string {
	if b.Queued {
		return fmt.Sprintf("concurrency cap %s is full (%d in use); waiting for a slot", b.Key, b.Limit)
	}
	return fmt.Sprintf("concurrency cap %s is full (%d in use); trying again in %s", b.Key, b.Limit, b.RetryIn)
}

// IsBusy reports whether err (or an error it wraps) is a *Busy, and returns it.
func IsBusy(err error) (*Busy, bool) {
	var b *Busy
	ok := errors.As(err, &b)
	return b, ok
}

// defaults fills the zero fields.
func (s *Semaphore) defaults() (prefix string, lease, poll, outage time.Duration) {
	prefix, lease, poll, outage = s.Prefix, s.Lease, s.Poll, s.Outage
	if prefix == "" {
		prefix = "crm:limit:"
	}
	if lease <= 0 {
		lease = 15 * time.Second
	}
	if poll <= 0 {
		poll = 100 * time.Millisecond
	}
	if outage <= 0 {
		outage = 30 * time.Second
	}
	return prefix, lease, poll, outage
}

// TryAcquire takes a slot of key if one is free (at most limit holders) and returns its
// release; when none is free it returns a *Busy at once. A limit of 0 or less means
// unlimited. This is what a queued task uses: a task that cannot start gives its worker
// slot back to work that can, rather than holding the slot while it waits. A non-empty
// waiter names the task: it joins the cap's wait list and Wake is told its name when a
// slot frees (the oldest waiter first).
func (s *Semaphore) TryAcquire(ctx context.Context, key string, limit int, waiter string) (func(), error) {
	if limit <= 0 || s == nil || s.Redis == nil {
		return func() {}, nil
	}
	prefix, lease, poll, outage := s.defaults()
	if s.Wake == nil {
		waiter = ""
	}
	rk, tok := prefix+key, token()
	ok, err := acquireScript.Run(ctx, s.Redis, []string{rk, prefix + "wait:" + key}, limit, lease.Milliseconds(), tok, waiter).Int()
	if err != nil {
		return nil, fmt.Errorf("acquire %s: %w", key, err)
	}
	switch {
	case ok < 0:
		return nil, &Busy{Key: key, Limit: limit, Queued: true, RetryIn: s.park(-1-ok, limit, lease)}
	case ok != 1:
		return nil, &Busy{Key: key, Limit: limit, RetryIn: max(poll, time.Second)}
	}
	return s.hold(key, prefix, tok, lease, outage), nil
}

// park is how long a waiter at place (0 = next in line) of a cap of limit slots stays
// parked (see Semaphore.Park).
func (s *Semaphore) park(place, limit int, lease time.Duration) time.Duration {
	most := s.Park
	if most <= 0 {
		most = 5 * time.Minute
	}
	return min(most, lease+time.Duration(place)*lease/time.Duration(limit))
}

// Acquire blocks until a slot of key is free (at most limit holders) or ctx ends. A
// limit of 0 or less means unlimited. The returned release frees the slot. It is for
// callers that own their goroutine (an operator's request, a run's planner); a queued
// step uses TryAcquire.
func (s *Semaphore) Acquire(ctx context.Context, key string, limit int) (func(), error) {
	if limit <= 0 || s == nil || s.Redis == nil {
		return func() {}, nil
	}
	prefix, lease, poll, outage := s.defaults()
	rk := prefix + key
	tok := token()
	var failingSince time.Time
	for {
		ok, err := acquireScript.Run(ctx, s.Redis, []string{rk, prefix + "wait:" + key}, limit, lease.Milliseconds(), tok, "").Int()
		switch {
		case err != nil && ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil && failingSince.IsZero():
			failingSince = time.Now()
		case err != nil && time.Since(failingSince) > outage:
			return nil, fmt.Errorf("acquire %s: Redis failing for %s: %w", key, outage, err)
		case err == nil:
			failingSince = time.Time{}
		}
		if err == nil && ok == 1 {
			return s.hold(key, prefix, tok, lease, outage), nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(poll):
		}
	}
}

// hold renews the lease until the returned release is called; release frees the slot.
func (s *Semaphore) hold(key, prefix, tok string, lease, outage time.Duration) func() {
	rk := prefix + key
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(lease / 3)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				ctx, cancel := context.WithTimeout(context.Background(), lease/3)
				_ = renewScript.Run(ctx, s.Redis, []string{rk}, lease.Milliseconds(), tok).Err()
				cancel()
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(stop)
			<-done
			s.release(key, prefix, tok, outage)
		})
	}
}

// release frees the slot and wakes the oldest waiter; when Redis fails it keeps trying
// in the background for up to outage, so that a failover does not cost the slot for a
// whole lease.
func (s *Semaphore) release(key, prefix, tok string, outage time.Duration) {
	try := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		wake := "0"
		if s.Wake != nil {
			wake = "1"
		}
		w, err := releaseScript.Run(ctx, s.Redis, []string{prefix + key, prefix + "wait:" + key}, tok, wake).Text()
		if errors.Is(err, redis.Nil) {
			return true
		}
		if err != nil {
			return false
		}
		if s.Wake != nil && w != "" {
			go s.wake(key, prefix+"wait:"+key, w)
		}
		return true
	}
	if try() {
		return
	}
	go func() {
		deadline := time.Now().Add(outage)
		for time.Now().Before(deadline) {
			time.Sleep(250 * time.Millisecond)
			if try() {
				return
			}
		}
	}()
}

// wake tells Wake of the waiter a release popped, and of the next ones while Wake finds
// them already queued (a bounded number: the recovery of a lost wake-up is the caller's).
func (s *Semaphore) wake(key, waitKey, w string) {
	for range 16 {
		if s.Wake(key, w) {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		next, err := popScript.Run(ctx, s.Redis, []string{waitKey}).Text()
		cancel()
		if err != nil || next == "" {
			return
		}
		w = next
	}
}

func token() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
