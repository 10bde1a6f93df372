package limit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/cn-relay-manager/cn-relay-manager/internal/testredis"
)

// Two "processes" (separate clients) never exceed the limit together.
func TestSemaphoreHoldsAcrossClients(t *testing.T) {
	r := testredis.Start(t)
	var clients []*Semaphore
	for i := 0; i < 2; i++ {
		c := redis.NewClient(&redis.Options{Addr: r.Addr})
		defer c.Close()
		clients = append(clients, &Semaphore{Redis: c, Poll: 5 * time.Millisecond})
	}
	var cur, peak atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(s *Semaphore) {
			defer wg.Done()
			release, err := s.Acquire(context.Background(), "host:h1", 3)
			if err != nil {
				t.Error(err)
				return
			}
			n := cur.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(20 * time.Millisecond)
			cur.Add(-1)
			release()
		}(clients[i%2])
	}
	wg.Wait()
	if p := peak.Load(); p != 3 {
		t.Fatalf("peak concurrency %d, want exactly the limit 3", p)
	}
}

// A crashed holder's slot comes back when its lease expires.
// A holder that dies (its process is killed: no more renewals) frees its slot within
// one lease.
func TestLeaseExpiryFreesSlot(t *testing.T) {
	r := testredis.Start(t)
	dead := redis.NewClient(&redis.Options{Addr: r.Addr})
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer c.Close()
	lease := 300 * time.Millisecond
	holder := &Semaphore{Redis: dead, Lease: lease, Poll: 10 * time.Millisecond}
	if _, err := holder.Acquire(context.Background(), "k", 1); err != nil { // never released
		t.Fatal(err)
	}
	_ = dead.Close() // the holder's process is gone: its renewals fail from now on
	s := &Semaphore{Redis: c, Lease: lease, Poll: 10 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := s.Acquire(ctx, "k", 1); err == nil {
		t.Fatal("acquired a slot that is still leased")
	}
	start := time.Now()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	release, err := s.Acquire(ctx2, "k", 1)
	if err != nil {
		t.Fatalf("the dead holder's slot never came back: %v", err)
	}
	release()
	if waited := time.Since(start); waited > 2*lease {
		t.Fatalf("slot came back after %s, lease %s", waited, lease)
	}
}

// A live holder keeps its slot for as long as it works, however short the lease.
func TestLeaseRenewedWhileHeld(t *testing.T) {
	r := testredis.Start(t)
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer c.Close()
	s := &Semaphore{Redis: c, Lease: 150 * time.Millisecond, Poll: 10 * time.Millisecond}
	release, err := s.Acquire(context.Background(), "k", 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second) // 6 leases
	defer cancel()
	if _, err := s.Acquire(ctx, "k", 1); err == nil {
		t.Fatal("a held slot was handed out again after its first lease ran out")
	}
	release()
	release() // idempotent
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	r2, err := s.Acquire(ctx2, "k", 1)
	if err != nil {
		t.Fatalf("released slot not free: %v", err)
	}
	r2()
}

// The embedded mode runs on miniredis: the script must work there too.
func TestSemaphoreOnMiniredis(t *testing.T) {
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer c.Close()
	s := &Semaphore{Redis: c, Poll: 5 * time.Millisecond}
	r1, err := s.Acquire(context.Background(), "k", 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Acquire(ctx, "k", 1); err == nil {
		t.Fatal("limit 1 gave two slots")
	}
	r1()
	r2, err := s.Acquire(context.Background(), "k", 1)
	if err != nil {
		t.Fatal(err)
	}
	r2()
}

// Through a Redis outage shorter than Outage, Acquire waits instead of failing, and a
// release that failed is retried, so the slot is not lost for a whole lease.
func TestSemaphoreRidesOutRedisOutage(t *testing.T) {
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1, DialerRetries: 1})
	defer c.Close()
	s := &Semaphore{Redis: c, Poll: 10 * time.Millisecond, Outage: 10 * time.Second}
	release, err := s.Acquire(context.Background(), "k", 1)
	if err != nil {
		t.Fatal(err)
	}
	m.Close() // Redis gone while the slot is held
	release() // fails now, retried in the background
	go func() {
		time.Sleep(300 * time.Millisecond)
		// Back with its data, as a promoted replica would be: the slot is still taken.
		if err := m.Restart(); err != nil {
			t.Error(err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	start := time.Now()
	r2, err := s.Acquire(ctx, "k", 1) // only possible once the retried release landed
	if err != nil {
		t.Fatalf("Acquire through a short outage: %v", err)
	}
	r2()
	t.Logf("slot free again %s after the outage began (lease: 3 min)", time.Since(start).Round(time.Millisecond))

	// An outage longer than Outage is an error.
	m3 := miniredis.RunT(t)
	c3 := redis.NewClient(&redis.Options{Addr: m3.Addr(), MaxRetries: -1, DialerRetries: 1})
	defer c3.Close()
	s3 := &Semaphore{Redis: c3, Poll: 10 * time.Millisecond, Outage: 200 * time.Millisecond}
	m3.Close()
	if _, err := s3.Acquire(context.Background(), "k", 1); err == nil {
		t.Fatal("Acquire succeeded with Redis down")
	}
}
