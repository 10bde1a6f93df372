// Package limit caps concurrent work per key (a sub2api host, an upstream host) across
// every worker process with a Redis-based semaphore: a sorted set of leases scored by
// their expiry. A holder renews its lease while it works, so the lease can be short and a
// killed holder frees its slot within one lease instead of blocking the host for minutes.
package limit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// acquireScript removes expired leases, then takes a slot if one is free. Time comes from
// the Redis server so that processes with skewed clocks agree.
var acquireScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
  return 1
end
return 0
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
}

// Acquire blocks until a slot of key is free (at most limit holders) or ctx ends. A
// limit of 0 or less means unlimited. The returned release frees the slot.
func (s *Semaphore) Acquire(ctx context.Context, key string, limit int) (func(), error) {
	if limit <= 0 || s == nil || s.Redis == nil {
		return func() {}, nil
	}
	prefix, lease, poll := s.Prefix, s.Lease, s.Poll
	if prefix == "" {
		prefix = "crm:limit:"
	}
	if lease <= 0 {
		lease = 15 * time.Second
	}
	if poll <= 0 {
		poll = 100 * time.Millisecond
	}
	outage := s.Outage
	if outage <= 0 {
		outage = 30 * time.Second
	}
	rk := prefix + key
	tok := token()
	var failingSince time.Time
	for {
		ok, err := acquireScript.Run(ctx, s.Redis, []string{rk}, limit, lease.Milliseconds(), tok).Int()
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
			return s.hold(rk, tok, lease, outage), nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(poll):
		}
	}
}

// hold renews the lease until the returned release is called; release frees the slot.
func (s *Semaphore) hold(rk, tok string, lease, outage time.Duration) func() {
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
			release(s.Redis, rk, tok, outage)
		})
	}
}

// release frees the slot; when Redis fails it keeps trying in the background for up to
// outage, so that a failover does not cost the slot for a whole lease.
func release(rc redis.UniversalClient, rk, tok string, outage time.Duration) {
	try := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return rc.ZRem(ctx, rk, tok).Err() == nil
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

func token() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
