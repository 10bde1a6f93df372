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

// TryAcquire never waits: a full cap answers *Busy at once; with Wake set the waiter
// joins the list and the next release wakes the oldest waiter first, each once.
func TestTryAcquireQueuesWaitersAndReleaseWakesTheOldest(t *testing.T) {
	for name, addr := range map[string]func(t *testing.T) string{
		"redis":     func(t *testing.T) string { return testredis.Start(t).Addr },
		"miniredis": func(t *testing.T) string { return miniredis.RunT(t).Addr() },
	} {
		t.Run(name, func(t *testing.T) {
			c := redis.NewClient(&redis.Options{Addr: addr(t)})
			defer c.Close()
			woken := make(chan string, 10)
			s := &Semaphore{Redis: c, Wake: func(_, w string) bool { woken <- w; return true }}
			ctx := context.Background()
			hold, err := s.TryAcquire(ctx, "upstream:x", 1, "import:a:0")
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			for _, w := range []string{"import:b:0", "import:c:0", "import:b:0"} {
				_, err := s.TryAcquire(ctx, "upstream:x", 1, w)
				b, busy := IsBusy(err)
				if !busy || !b.Queued || b.Key != "upstream:x" {
					t.Fatalf("full cap for %s: %v", w, err)
				}
				// The queue parks the step this long, a safety net for a lost wake-up: one
				// lease (15 s) for the next in line, one more per cap's worth ahead of it.
				if want := map[string]time.Duration{"import:b:0": 15 * time.Second, "import:c:0": 30 * time.Second}[w]; b.RetryIn != want {
					t.Fatalf("%s is parked for %s, want %s", w, b.RetryIn, want)
				}
			}
			if d := time.Since(start); d > time.Second {
				t.Fatalf("TryAcquire waited %s on a full cap", d)
			}
			if n, _ := c.ZCard(ctx, "crm:limit:wait:upstream:x").Result(); n != 2 {
				t.Fatalf("wait list holds %d entries, want 2 (b once, c)", n)
			}
			hold()
			if w := <-woken; w != "import:b:0" {
				t.Fatalf("first release woke %s, want the oldest waiter import:b:0", w)
			}
			// b gets the slot: it leaves the list (it was popped already); c still waits.
			hb, err := s.TryAcquire(ctx, "upstream:x", 1, "import:b:0")
			if err != nil {
				t.Fatal(err)
			}
			hb()
			if w := <-woken; w != "import:c:0" {
				t.Fatalf("second release woke %s, want import:c:0", w)
			}
			select {
			case w := <-woken:
				t.Fatalf("woke %s with nobody waiting", w)
			case <-time.After(100 * time.Millisecond):
			}
		})
	}
}

// A waiter that got its slot by other means (the recovery sweep queued its task) leaves
// the list, and a wake-up its caller did not need goes to the next waiter: no release
// spends its only wake-up on a task that is not waiting.
func TestNoWakeUpIsSpentOnATaskThatIsNotWaiting(t *testing.T) {
	r := testredis.Start(t)
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer c.Close()
	ctx := context.Background()
	var mu sync.Mutex
	var calls []string
	queued := map[string]bool{"import:q:0": true} // already queued by someone else
	woken := make(chan string, 10)
	s := &Semaphore{Redis: c, Wake: func(_, w string) bool {
		mu.Lock()
		calls = append(calls, w)
		mu.Unlock()
		if queued[w] {
			return false
		}
		woken <- w
		return true
	}}
	hold, err := s.TryAcquire(ctx, "host:h", 1, "import:a:0")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"import:gone:0", "import:q:0", "import:z:0"} {
		if _, err := s.TryAcquire(ctx, "host:h", 1, w); err == nil {
			t.Fatal("a full cap gave a slot")
		}
	}
	// "gone" got a slot elsewhere in the meantime (a second holder would need limit 2:
	// simulate by acquiring with a larger limit): it must leave the list.
	other, err := s.TryAcquire(ctx, "host:h", 2, "import:gone:0")
	if err != nil {
		t.Fatal(err)
	}
	other()
	hold()
	select {
	case w := <-woken:
		if w != "import:z:0" {
			t.Fatalf("woke %s, want import:z:0 (gone left the list, q was queued already)", w)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("nobody woken; Wake saw %v", calls)
	}
}

// With no Wake (a process that cannot queue tasks), a full cap is a plain Busy with a
// retry hint, and nothing joins the list.
func TestTryAcquireWithoutWakeRetriesLater(t *testing.T) {
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer c.Close()
	s := &Semaphore{Redis: c}
	hold, err := s.TryAcquire(context.Background(), "k", 1, "import:a:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hold()
	_, err = s.TryAcquire(context.Background(), "k", 1, "import:b:0")
	b, busy := IsBusy(err)
	if !busy || b.Queued || b.RetryIn <= 0 {
		t.Fatalf("got %v", err)
	}
	if m.Exists("crm:limit:wait:k") {
		t.Fatal("a waiter joined a list nobody wakes")
	}
}
