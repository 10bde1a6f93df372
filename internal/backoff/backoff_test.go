package backoff

import (
	"testing"
	"time"
)

func TestDelayDoublesUpToMax(t *testing.T) {
	p := Policy{Base: time.Second, Max: 10 * time.Second}
	want := []time.Duration{1, 2, 4, 8, 10, 10}
	for n, w := range want {
		if got := p.Delay(n, 0); got != w*time.Second {
			t.Errorf("Delay(%d) = %s, want %s", n, got, w*time.Second)
		}
	}
	if got := p.Delay(1000, 0); got != 10*time.Second {
		t.Errorf("Delay(1000) = %s: no overflow past Max", got)
	}
}

func TestDelayHonoursHint(t *testing.T) {
	if got := Step(time.Second).Delay(0, 7*time.Second); got != 7*time.Second {
		t.Fatalf("a Retry-After of 7s gave %s", got)
	}
	if got := Step(time.Second).Delay(5, time.Second); got != 32*time.Second {
		t.Fatalf("the 6th step retry waits %s, want 32s (base·2⁵)", got)
	}
}

func TestJitterSpreadsWithinItsFraction(t *testing.T) {
	lo := Policy{Base: 200 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.5, Rand: func() float64 { return 0 }}
	hi := lo
	hi.Rand = func() float64 { return 0.999999 }
	for n := 0; n < 8; n++ {
		a, b := lo.Delay(n, 0), hi.Delay(n, 0)
		if b < a || float64(b) > 1.5*float64(a)+1 {
			t.Fatalf("attempt %d: jitter spread [%s, %s] outside [d, 1.5d]", n, a, b)
		}
	}
	seen := map[time.Duration]bool{}
	for range 20 {
		seen[Host.Delay(2, 0)] = true
	}
	if len(seen) < 2 {
		t.Fatal("Host policy: 20 delays all equal; jitter not applied")
	}
}
