package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/cn-relay-manager/cn-relay-manager/internal/egress"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/evidence"
	"github.com/cn-relay-manager/cn-relay-manager/internal/failure"
)

// maxBody bounds how much of an answer is read; model lists are the largest answers.
const maxBody = 4 << 20

// answer is one HTTP response, fully read.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// request describes one call to the upstream.
type request struct {
	method    string
	url       string
	key       string
	body      any  // JSON-encoded when non-nil
	anthropic bool // send x-api-key and anthropic-version as well as Bearer
	// private marks an answer that describes the account holder (name, e-mail): its body
	// is not previewed in the evidence, only status and latency are.
	private bool
}

// do performs one call with the per-call timeout, records the
// exchange as evidence (redacted) and returns the answer. Transport failures come back as
// *failure.Error with class upstream_unreachable; the key never appears in them.
func (p *Prober) do(ctx context.Context, r request) (*answer, error) {
	u, err := url.Parse(r.url)
	if err != nil || u.Host == "" {
		return nil, &failure.Error{Class: failure.UpstreamIncompatible, Message: "invalid upstream URL"}
	}
	var payload io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return nil, &failure.Error{Class: failure.Internal, Message: "encode request", Err: err}
		}
		payload = bytes.NewReader(b)
	}
	cctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	start := time.Now()
	ex := evidence.Exchange{Target: "upstream", Method: r.method, Path: u.Path, At: start}
	req, err := http.NewRequestWithContext(cctx, r.method, r.url, payload)
	if err != nil {
		return nil, &failure.Error{Class: failure.Internal, Message: "build request"}
	}
	req.Header.Set("Authorization", "Bearer "+r.key)
	req.Header.Set("Accept", "application/json, text/event-stream")
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.anthropic {
		// MiniMax CN rejected x-api-key alone, others want it: send both.
		req.Header.Set("x-api-key", r.key)
		req.Header.Set("anthropic-version", "2023-06-01")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, p.transportFailure(ctx, ex, start, r.key, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	ex.Status = resp.StatusCode
	ex.Latency = time.Since(start)
	if r.private {
		ex.Preview = "(body not recorded: it describes the account holder)"
	} else {
		ex.Preview = previewOf(evidence.Redact(headOf(body, 2*evidence.PreviewLimit), r.key))
	}
	if err != nil {
		ex.Error = evidence.Redact(err.Error(), r.key)
		evidence.Record(ctx, ex)
		return nil, &failure.Error{Class: failure.UpstreamUnreachable, Retryable: true,
			Message: fmt.Sprintf("reading %s %s: %s", r.method, u.Path, ex.Error)}
	}
	evidence.Record(ctx, ex)
	return &answer{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

func (p *Prober) transportFailure(ctx context.Context, ex evidence.Exchange, start time.Time, key string, err error) *failure.Error {
	ex.Latency = time.Since(start)
	msg := evidence.Redact(err.Error(), key)
	ex.Error = msg
	evidence.Record(ctx, ex)
	fe := &failure.Error{Class: failure.UpstreamUnreachable, Retryable: true,
		Message: fmt.Sprintf("%s %s: %s", ex.Method, ex.Path, msg)}
	if errors.Is(err, context.DeadlineExceeded) {
		fe.Message = fmt.Sprintf("%s %s: timed out after %s", ex.Method, ex.Path, time.Since(start).Round(time.Millisecond))
	}
	if errors.Is(err, egress.ErrDenied) {
		// The SSRF guard refused the destination: retrying cannot help.
		fe.Retryable = false
		fe.Message = fmt.Sprintf("%s %s refused by the egress guard: %s", ex.Method, ex.Path, msg)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		// The caller gave up (not the upstream): keep the cause for errors.Is.
		fe.Err = ctxErr
	}
	return fe
}

// headOf returns the first n bytes as text. Redaction runs on a window larger than the
// preview so that a key straddling the cut is still recognised.
func headOf(body []byte, n int) string {
	if len(body) > n {
		body = body[:n]
	}
	return string(body)
}

func previewOf(s string) string {
	if len(s) > evidence.PreviewLimit {
		s = s[:evidence.PreviewLimit]
	}
	return s
}
