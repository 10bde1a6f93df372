// Package evidence collects what the host and upstream clients saw on the wire (method,
// path, status, latency, a redacted body preview) so that the pipeline can store it with
// each attempt. Clients record into the Recorder carried by the context; they never know
// where it goes.
package evidence

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// PreviewLimit bounds the body preview kept per exchange.
const PreviewLimit = 512

// Exchange is one HTTP request/response as seen by a client.
type Exchange struct {
	Target    string        `json:"target"` // "host", "gateway" or "upstream"
	Method    string        `json:"method"`
	Path      string        `json:"path"`
	Status    int           `json:"status"` // 0 when no answer arrived
	LatencyMS int64         `json:"latency_ms"`
	Preview   string        `json:"preview,omitempty"` // redacted, at most PreviewLimit bytes
	Error     string        `json:"error,omitempty"`   // transport error, redacted
	At        time.Time     `json:"at"`
	Latency   time.Duration `json:"-"`
}

// Recorder accumulates exchanges; safe for concurrent use.
type Recorder struct {
	mu sync.Mutex
	ex []Exchange
}

// Exchanges returns a copy of what was recorded so far.
func (r *Recorder) Exchanges() []Exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Exchange(nil), r.ex...)
}

type ctxKey struct{}

// WithRecorder returns a context whose client calls are recorded into r.
func WithRecorder(ctx context.Context, r *Recorder) context.Context {
	return context.WithValue(ctx, ctxKey{}, r)
}

// Recording reports whether ctx carries a Recorder: only then is an exchange's Preview
// kept, so a client may skip building (and redacting) one.
func Recording(ctx context.Context) bool {
	r, _ := ctx.Value(ctxKey{}).(*Recorder)
	return r != nil
}

// Observer sees every exchange passed to Record, whether or not a Recorder is in the
// context (metrics use it). It must be fast, must not block and must not keep e.Preview
// or e.Error anywhere they could leak: the metrics observer reads only Target, Status,
// Error != "" and the latency.
type Observer func(e Exchange)

var observer atomic.Pointer[Observer]

// SetObserver installs f as the process-wide observer (nil removes it) and returns the
// previous one.
func SetObserver(f Observer) Observer {
	var old *Observer
	if f == nil {
		old = observer.Swap(nil)
	} else {
		old = observer.Swap(&f)
	}
	if old == nil {
		return nil
	}
	return *old
}

// Record appends e to the recorder carried by ctx, if any, and reports it to the observer.
// The caller must have redacted Preview and Error already.
func Record(ctx context.Context, e Exchange) {
	if e.LatencyMS == 0 && e.Latency > 0 {
		e.LatencyMS = e.Latency.Milliseconds()
	}
	if o := observer.Load(); o != nil {
		(*o)(e)
	}
	r, _ := ctx.Value(ctxKey{}).(*Recorder)
	if r == nil {
		return
	}
	if len(e.Preview) > PreviewLimit {
		e.Preview = e.Preview[:PreviewLimit]
	}
	// PostgreSQL text columns cannot hold NUL bytes; an upstream may send them.
	e.Preview = strings.ToValidUTF8(strings.ReplaceAll(e.Preview, "\x00", ""), "?")
	e.Error = strings.ReplaceAll(e.Error, "\x00", "")
	r.mu.Lock()
	r.ex = append(r.ex, e)
	r.mu.Unlock()
}

// MinFragment is the shortest piece of a secret that Redact removes.
const MinFragment = 8

// Redact replaces every secret, and every fragment of MinFragment or more characters of
// one, with "****". Providers echo parts of keys in error bodies ("Your api key: ****0001"),
// and a relay may echo more, so whole-string replacement is not enough.
func Redact(text string, secrets ...string) string {
	for _, s := range secrets {
		if len(s) < MinFragment || text == "" {
			continue
		}
		text = redactOne(text, s)
	}
	return text
}

func redactOne(text, secret string) string {
	if !strings.Contains(text, secret[:MinFragment]) && !containsAnyFragment(text, secret) {
		return text
	}
	var b strings.Builder
	for i := 0; i < len(text); {
		n := longestFragmentAt(text[i:], secret)
		if n >= MinFragment {
			b.WriteString("****")
			i += n
			continue
		}
		b.WriteByte(text[i])
		i++
	}
	return b.String()
}

// containsAnyFragment is a quick pre-check so that texts without any fragment are returned
// untouched without building a copy.
func containsAnyFragment(text, secret string) bool {
	for j := 0; j+MinFragment <= len(secret); j++ {
		if strings.Contains(text, secret[j:j+MinFragment]) {
			return true
		}
	}
	return false
}

// longestFragmentAt returns the length of the longest prefix of s that occurs in secret.
func longestFragmentAt(s, secret string) int {
	best := 0
	for j := 0; j < len(secret); j++ {
		k := 0
		for k < len(s) && j+k < len(secret) && s[k] == secret[j+k] {
			k++
		}
		if k > best {
			best = k
		}
	}
	return best
}
