package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestPolicyNext(t *testing.T) {
	retryable := &DeliveryError{Retryable: true}
	low := Policy{Rand: func() float64 { return 0 }}
	high := Policy{Rand: func() float64 { return 0.999999 }}
	for attempt := 1; attempt < DefaultAttempts; attempt++ {
		base := DefaultInitial << (attempt - 1)
		if base > DefaultMaxDelay {
			base = DefaultMaxDelay
		}
		dl, ok1 := low.Next(attempt, retryable)
		dh, ok2 := high.Next(attempt, retryable)
		if !ok1 || !ok2 {
			t.Fatalf("attempt %d: no retry", attempt)
		}
		if dl != base/2 || dh < base*99/100 || dh > base {
			t.Errorf("attempt %d: delays %v..%v, want %v..%v", attempt, dl, dh, base/2, base)
		}
	}
	if _, ok := low.Next(DefaultAttempts, retryable); ok {
		t.Errorf("retries past MaxAttempts")
	}
	if _, ok := low.Next(1, &DeliveryError{Retryable: false}); ok {
		t.Errorf("retries a permanent failure")
	}
	if _, ok := low.Next(1, errors.New("formatting failed")); ok {
		t.Errorf("retries an error that is not a delivery failure")
	}
	if _, ok := low.Next(1, context.Canceled); ok {
		t.Errorf("retries a cancelled context")
	}

	// A receiver's Retry-After is a floor, capped.
	d, _ := low.Next(1, &DeliveryError{Retryable: true, RetryAfter: 10 * time.Minute})
	if d != 10*time.Minute {
		t.Errorf("Retry-After floor: %v", d)
	}
	d, _ = low.Next(1, &DeliveryError{Retryable: true, RetryAfter: 48 * time.Hour})
	if d != DefaultRetryAfterCap {
		t.Errorf("Retry-After cap: %v", d)
	}

	// The whole schedule is bounded.
	var total time.Duration
	for attempt := 1; ; attempt++ {
		d, ok := high.Next(attempt, retryable)
		if !ok {
			break
		}
		total += d
	}
	if total > 30*time.Minute {
		t.Errorf("default schedule waits %v in all", total)
	}

	custom := Policy{MaxAttempts: 3, Initial: time.Second, MaxDelay: 2 * time.Second, Rand: func() float64 { return 0.5 }}
	d1, _ := custom.Next(1, retryable)
	d2, _ := custom.Next(2, retryable)
	_, again := custom.Next(3, retryable)
	if d1 != 750*time.Millisecond || d2 != 1500*time.Millisecond || again {
		t.Errorf("custom: %v %v %v", d1, d2, again)
	}
}

// dedupReceiver is what a receiver should do: verify, then accept each delivery ID once.
type dedupReceiver struct {
	mu sync.Mutex
	// failLeft: deliveries to process but answer 503, as if the answer were lost, so that
	// the sender retries a delivery the receiver already has.
	failLeft map[string]int
	seen     map[string]int // deliveries processed per ID (must end at 1)
	requests map[string]int // requests per ID
	stamps   map[string][]string
	secret   string
	bad      atomic.Int32
}

func (d *dedupReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	id := r.Header.Get(HeaderDelivery)
	if err := VerifyGeneric(d.secret, r.Header, body, time.Now(), 10*time.Minute); err != nil {
		d.bad.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.requests[id]++
	d.stamps[id] = append(d.stamps[id], r.Header.Get(HeaderTimestamp))
	if d.seen[id] == 0 {
		d.seen[id]++ // process the event
	}
	if d.failLeft[id] > 0 {
		d.failLeft[id]--
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func newDedup(secret string) *dedupReceiver {
	return &dedupReceiver{failLeft: map[string]int{}, seen: map[string]int{}, requests: map[string]int{},
		stamps: map[string][]string{}, secret: secret}
}

func TestDeliverRetriesUntilDelivered(t *testing.T) {
	rcv := newDedup(secretValue)
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	rcv.failLeft["evt-batch-1"] = 2

	var waits []time.Duration
	clock := time.Now()
	n := &Notifier{
		Sender: &Sender{},
		Policy: Policy{Rand: func() float64 { return 0 }},
		// Each attempt is formatted afresh: its signature carries the attempt's time.
		Now: func() time.Time { clock = clock.Add(time.Second); return clock },
		Wait: func(ctx context.Context, d time.Duration) error {
			waits = append(waits, d)
			return nil
		},
	}
	tg := Target{Kind: Generic, URL: srv.URL + "/hooks/TOKENGENERIC0123456789", Secret: secretValue}
	attempts, err := n.Deliver(context.Background(), events()[0], tg)
	if err != nil || attempts != 3 {
		t.Fatalf("Deliver: %d attempts, %v", attempts, err)
	}
	if len(waits) != 2 || waits[0] != DefaultInitial/2 || waits[1] != DefaultInitial {
		t.Errorf("waits %v", waits)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if rcv.requests["evt-batch-1"] != 3 || rcv.seen["evt-batch-1"] != 1 || rcv.bad.Load() != 0 {
		t.Errorf("requests %v accepted %v bad %d", rcv.requests, rcv.seen, rcv.bad.Load())
	}
	if s := rcv.stamps["evt-batch-1"]; len(s) != 3 || s[0] == s[1] || s[1] == s[2] {
		t.Errorf("signature timestamps %v", s)
	}
}

func TestDeliverStops(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_, _ = io.WriteString(w, `{"errcode":310000,"errmsg":"keywords not in content"}`)
	}))
	defer srv.Close()
	n := &Notifier{Sender: &Sender{}, Wait: func(context.Context, time.Duration) error {
		t.Error("waited after a permanent failure")
		return nil
	}}
	attempts, err := n.Deliver(context.Background(), events()[1], targetAt(DingTalk, srv))
	if attempts != 1 || err == nil || IsRetryable(err) || calls.Load() != 1 {
		t.Errorf("permanent: %d attempts, %v, %d calls", attempts, err, calls.Load())
	}

	// Always failing: bounded by MaxAttempts.
	always := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer always.Close()
	n = &Notifier{Sender: &Sender{}, Policy: Policy{MaxAttempts: 4},
		Wait: func(context.Context, time.Duration) error { return nil }}
	attempts, err = n.Deliver(context.Background(), events()[1], targetAt(Generic, always))
	if attempts != 4 || !IsRetryable(err) {
		t.Errorf("bounded: %d attempts, %v", attempts, err)
	}

	// A context that ends while waiting ends the delivery.
	ctx, cancel := context.WithCancel(context.Background())
	n = &Notifier{Sender: &Sender{}, Wait: func(ctx context.Context, d time.Duration) error {
		cancel()
		return sleep(ctx, d)
	}}
	attempts, err = n.Deliver(ctx, events()[1], targetAt(Generic, always))
	if attempts != 1 || !IsRetryable(err) {
		t.Errorf("cancelled while waiting: %d attempts, %v", attempts, err)
	}

	// An invalid target is never sent.
	attempts, err = n.Deliver(context.Background(), events()[1], Target{Kind: Slack, URL: "nope"})
	if attempts != 0 || err == nil {
		t.Errorf("invalid target: %d attempts, %v", attempts, err)
	}
}

func TestDeliverConcurrentEachOnce(t *testing.T) {
	rcv := newDedup(secretValue)
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	const events = 40
	for i := 0; i < events; i++ {
		if i%3 == 0 {
			rcv.failLeft[fmt.Sprintf("evt-%d", i)] = 1
		}
	}
	n := &Notifier{Sender: &Sender{}, Policy: Policy{Initial: time.Millisecond, MaxDelay: 5 * time.Millisecond}}
	tg := Target{Kind: Generic, URL: srv.URL + "/hooks/TOKENGENERIC0123456789", Secret: secretValue}
	var wg sync.WaitGroup
	errs := make(chan error, events)
	for i := 0; i < events; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			e := Event{ID: fmt.Sprintf("evt-%d", i), Type: RecoveryDone, At: time.Now(), Host: "prod",
				Account: &Account{HostAccountID: int64(i)}, Recovery: &Recovery{Actions: []string{"clear_error"}}}
			if _, err := n.Deliver(context.Background(), e, tg); err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.seen) != events {
		t.Errorf("%d distinct deliveries accepted, want %d", len(rcv.seen), events)
	}
	for i := 0; i < events; i += 3 {
		if id := fmt.Sprintf("evt-%d", i); rcv.requests[id] != 2 {
			t.Errorf("%s: %d requests, want 2 (one answer lost, one retry)", id, rcv.requests[id])
		}
	}
	for id, n := range rcv.seen {
		if n != 1 {
			t.Errorf("%s accepted %d times", id, n)
		}
	}
}
