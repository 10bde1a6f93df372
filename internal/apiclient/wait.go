package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// ErrTimeout is returned by Poll when the timeout passed before the check was done.
var ErrTimeout = errors.New("timed out")

// Poll calls check right away and then every interval until it reports done or an error,
// the timeout passes (ErrTimeout; 0 = no limit) or ctx ends (ctx.Err()). It is the one
// wait loop of every API caller: what was started keeps running on the server whatever
// Poll returns.
func Poll(ctx context.Context, interval, timeout time.Duration, check func(ctx context.Context) (bool, error)) error {
	if interval <= 0 {
		interval = time.Second
	}
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	for {
		done, err := check(ctx)
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return ErrTimeout
		case <-time.After(interval):
		}
	}
}

// BatchState is what waiting reads of a batch.
type BatchState struct {
	ID        string         `json:"id"`
	Status    string         `json:"status"`
	ItemCount int            `json:"item_count"`
	Counts    map[string]int `json:"counts"`
}

// Running reports whether a batch in status is still working (queued or running).
func Running(status string) bool { return status == "queued" || status == "running" || status == "" }

// WaitBatch polls batch id until it is no longer running and returns its last answer.
// seen, when set, is called with every answer (a progress display).
func (c *Client) WaitBatch(ctx context.Context, id string, interval, timeout time.Duration, seen func(BatchState, json.RawMessage)) (json.RawMessage, error) {
	var raw json.RawMessage
	err := Poll(ctx, interval, timeout, func(ctx context.Context) (bool, error) {
		var b BatchState
		var err error
		if raw, err = c.GetBatch(ctx, id, &b); err != nil {
			return false, err
		}
		if seen != nil {
			seen(b, raw)
		}
		return !Running(b.Status), nil
	})
	return raw, err
}
