// Package batch is the batch service: it validates and submits batches of keys, and
// retries, cancels, rolls back, reconciles and imports (dry runs) them. The REST API's
// handlers and the web pages call it and only translate HTTP; the service writes through
// the store and puts work on the queue, and never calls a host itself.
package batch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/cn-relay-manager/cn-relay-manager/internal/batch/request"
	"github.com/cn-relay-manager/cn-relay-manager/internal/catalog"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/step"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// Queue is the part of the job queue the service needs (jobs.Queue).
type Queue interface {
	// EnqueueItems enqueues every item's next step and returns how many were enqueued;
	// what fails is left to the recovery sweep.
	EnqueueItems(ctx context.Context, items []*store.Item) int
	EnqueueRollback(ctx context.Context, batchID string) error
	EnqueueReconcile(ctx context.Context, run *store.ReconcileRun) error
	EnqueueRepair(ctx context.Context, run *store.ReconcileRun) error
}

// RollbackChecker refuses rollbacks the ledger cannot support (store.ErrNothingRecorded).
type RollbackChecker interface {
	CheckRollback(ctx context.Context, batchID string) error
}

// Service runs the batch operations.
type Service struct {
	Store   *store.Store
	Queue   Queue
	Box     *secret.Box
	Catalog *catalog.Catalog
	// Egress refuses upstream URLs that point at denied addresses (the SSRF guard; the
	// same policy is enforced again when the prober connects). Nil: no check.
	Egress interface{ CheckURL(raw string) error }
	// Rollbacks refuses rollbacks the ledger cannot support (nil: no check).
	Rollbacks RollbackChecker
}

// Submitted is what a submission made: the batch and its items as stored, what the
// interpretation of each item noted (nil for a replay), and how many were enqueued.
type Submitted struct {
	Batch    *store.Batch
	Items    []*store.Item
	Notes    [][]string
	Enqueued int
	// Replayed is set when the submission repeats an earlier one (same idempotency key):
	// nothing was created, the first submission's batch is returned.
	Replayed bool
}

// Submit validates req, stores the batch and its items in one transaction and enqueues
// every item's first step. A refused request is a *FieldError naming the field.
func (s *Service) Submit(ctx context.Context, req Request) (*Submitted, error) {
	if req.HostID == "" {
		return nil, badField("host_id", "host_id is required")
	}
	h, err := s.Store.GetHost(ctx, req.HostID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, badField("host_id", "no host with this id is registered")
	} else if err != nil {
		return nil, err
	}
	idem := strings.TrimSpace(req.IdempotencyKey)
	if len(idem) > request.MaxIdemKey {
		return nil, badField("Idempotency-Key", fmt.Sprintf("the Idempotency-Key header is at most %d characters", request.MaxIdemKey))
	}
	if r, bad := request.ControlChar(idem, false); bad || !utf8.ValidString(idem) {
		return nil, badField("Idempotency-Key", fmt.Sprintf("the Idempotency-Key header must be printable UTF-8 text (found U+%04X or invalid bytes)", r))
	}
	if idem != "" {
		if prev, err := s.Store.GetBatchByIdempotencyKey(ctx, h.ID, idem); err == nil {
			return s.replay(ctx, prev)
		}
	}
	b, items, notes, err := s.build(h, &req)
	if err != nil {
		return nil, err
	}
	if idem != "" {
		b.IdempotencyKey = &idem
	}
	if err := s.Store.CreateBatch(ctx, b, items); err != nil {
		if idem != "" {
			if prev, gerr := s.Store.GetBatchByIdempotencyKey(ctx, h.ID, idem); gerr == nil {
				return s.replay(ctx, prev) // lost a race with the same submission
			}
		}
		return nil, err
	}
	// The batch is committed; enqueue failures are repaired by the recovery sweep.
	return &Submitted{Batch: b, Items: items, Notes: notes, Enqueued: s.Queue.EnqueueItems(ctx, items)}, nil
}

// replay returns the batch an earlier submission with the same idempotency key created.
func (s *Service) replay(ctx context.Context, b *store.Batch) (*Submitted, error) {
	items, err := s.allItems(ctx, b.ID)
	if err != nil {
		return nil, err
	}
	return &Submitted{Batch: b, Items: items, Replayed: true}, nil
}

// allItems reads every item of a batch, page by page.
func (s *Service) allItems(ctx context.Context, batchID string) ([]*store.Item, error) {
	var out []*store.Item
	for {
		page, total, err := s.Store.ListItems(ctx, batchID, request.MaxItems, len(out))
		if err != nil {
			return nil, err
		}
		for i := range page {
			out = append(out, &page[i])
		}
		if len(page) == 0 || len(out) >= total {
			return out, nil
		}
	}
}

func (s *Service) build(h *store.Host, req *Request) (*store.Batch, []*store.Item, [][]string, error) {
	opts, err := options(req)
	if err != nil {
		return nil, nil, nil, err
	}
	b := &store.Batch{HostID: h.ID, Name: strings.TrimSpace(req.Name), Mode: req.Mode, DryRun: req.DryRun, Force: req.Force, Options: opts}
	items := make([]*store.Item, 0, len(req.Items))
	notes := make([][]string, 0, len(req.Items))
	seen := map[string]int{}
	for i, in := range req.Items {
		it, note, err := s.buildItem(i, in)
		if err != nil {
			return nil, nil, nil, err
		}
		if j, dup := seen[it.KeyFingerprint]; dup && !req.Force {
			return nil, nil, nil, badField(fmt.Sprintf("items[%d].api_key", i), fmt.Sprintf("item %d: the same key is already item %d of this batch", i+1, j+1))
		}
		seen[it.KeyFingerprint] = i
		items = append(items, it)
		notes = append(notes, note)
	}
	return b, items, notes, nil
}

// buildItem validates one item and interprets its pasted base URL, key and hint the way the
// import step will (normalise, detect), so that a line the product cannot answer is refused
// here with a reason the operator can act on. It returns the interpretation's notes. The
// field is the request's path (items[3].base_url, 0-based); the message counts items from
// 1, as the operator does ("item 4: …").
func (s *Service) buildItem(i int, in Item) (*store.Item, []string, error) {
	refuse := func(f, msg string) error {
		return badField(fmt.Sprintf("items[%d].%s", i, f), fmt.Sprintf("item %d: %s", i+1, msg))
	}
	if fe := request.CheckItem(in); fe != nil {
		return nil, nil, refuse(fe.Field, fe.Message)
	}
	key := strings.TrimSpace(in.APIKey)
	ip := s.Catalog.Interpret(catalog.Input{BaseURL: in.BaseURL, APIKey: key, Hint: in.Provider})
	if ip.Refusal != "" {
		return nil, nil, refuse("base_url", ip.Refusal)
	}
	norm := ip.URL
	if s.Egress != nil {
		if err := s.Egress.CheckURL(norm.BaseURL); err != nil {
			return nil, nil, refuse("base_url", err.Error())
		}
	}
	models := append([]string{}, in.Models...)
	sealed, err := s.Box.Seal(key)
	if err != nil {
		return nil, nil, err
	}
	name := strings.TrimSpace(in.Name)
	if name == "" {
		name = truncateText(fmt.Sprintf("item-%d %s", i+1, norm.Host), request.MaxNameLen)
	}
	return &store.Item{Name: name, BaseURL: catalog.WithoutQuery(in.BaseURL), NormalizedURL: norm.BaseURL, ProviderHint: strings.TrimSpace(in.Provider),
		AnthropicBaseURL: norm.AnthropicBase, Provider: ip.Detection.ProviderID, DetectedBy: ip.Detection.By, SuggestedProvider: ip.Detection.Suggested,
		APIKeyEnc: sealed, KeyMasked: secret.Mask(key), KeyFingerprint: s.Box.Fingerprint(key),
		RequestedModels: models, Step: step.First}, ip.Notes, nil
}

// truncateText cuts s to at most n bytes without splitting a character.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// Retry restarts the batch's failed items at the first step; it returns how many.
func (s *Service) Retry(ctx context.Context, batchID string) (int, error) {
	if _, err := s.Store.GetBatch(ctx, batchID); err != nil {
		return 0, err
	}
	items, err := s.Store.RetryFailed(ctx, batchID, step.First)
	if err != nil {
		return 0, err
	}
	ptrs := make([]*store.Item, len(items))
	for i := range items {
		ptrs[i] = &items[i]
	}
	s.Queue.EnqueueItems(ctx, ptrs)
	return len(items), nil
}

// Cancel stops the batch's running items; it returns how many.
func (s *Service) Cancel(ctx context.Context, batchID string) (int, error) {
	if _, err := s.Store.GetBatch(ctx, batchID); err != nil {
		return 0, err
	}
	return s.Store.CancelBatch(ctx, batchID)
}

// Rollback queues the rollback of a batch after checking that the ledger holds something
// for it (a *StateError nothing_to_roll_back when it does not).
func (s *Service) Rollback(ctx context.Context, batchID string) error {
	if s.Rollbacks != nil {
		if err := s.Rollbacks.CheckRollback(ctx, batchID); err != nil {
			if errors.Is(err, store.ErrNothingRecorded) {
				return &StateError{Code: "nothing_to_roll_back", Message: err.Error()}
			}
			return err
		}
	}
	return s.Queue.EnqueueRollback(ctx, batchID)
}

// Reconcile queues a reconcile of the batch's ledger against its host and returns the
// queued run.
func (s *Service) Reconcile(ctx context.Context, batchID string) (*store.ReconcileRun, error) {
	b, err := s.Store.GetBatch(ctx, batchID)
	if err != nil {
		return nil, err
	}
	return s.queueReconcile(ctx, b.HostID, batchID)
}

// ReconcileHost queues a reconcile of the whole host and returns the queued run.
func (s *Service) ReconcileHost(ctx context.Context, hostID string) (*store.ReconcileRun, error) {
	if _, err := s.Store.GetHost(ctx, hostID); err != nil {
		return nil, err
	}
	return s.queueReconcile(ctx, hostID, "")
}

func (s *Service) queueReconcile(ctx context.Context, hostID, batchID string) (*store.ReconcileRun, error) {
	run := &store.ReconcileRun{HostID: hostID, BatchID: batchID, Status: "queued"}
	if err := s.Store.CreateReconcileRun(ctx, run); err != nil {
		return nil, err
	}
	if err := s.Queue.EnqueueReconcile(ctx, run); err != nil {
		return nil, err
	}
	return run, nil
}

// Repair queues the safe repairs of a finished reconcile run's findings (a *StateError
// run_not_finished for a run that has not completed).
func (s *Service) Repair(ctx context.Context, runID string) (*store.ReconcileRun, error) {
	run, err := s.Store.GetReconcileRun(ctx, runID)
	if err != nil {
		return nil, err
	}
	if run.Status != store.RunCompleted {
		return nil, &StateError{Code: "run_not_finished", Message: "only a completed reconcile run can be repaired"}
	}
	return run, s.Queue.EnqueueRepair(ctx, run)
}

// ImportDryRun submits a dry-run batch again for real (same items, same options) and
// returns the new batch's ID (a *StateError not_a_dry_run for a batch that was not one).
func (s *Service) ImportDryRun(ctx context.Context, batchID string) (string, error) {
	b, err := s.Store.GetBatch(ctx, batchID)
	if err != nil {
		return "", err
	}
	if !b.DryRun {
		return "", &StateError{Code: "not_a_dry_run", Message: "only a dry-run batch can be imported"}
	}
	items, _, err := s.Store.ListItems(ctx, batchID, 0, 0)
	if err != nil {
		return "", err
	}
	nb := &store.Batch{HostID: b.HostID, Name: b.Name, Mode: b.Mode, Force: b.Force, Options: b.Options}
	copies := make([]*store.Item, 0, len(items))
	for _, it := range items {
		copies = append(copies, &store.Item{Name: it.Name, BaseURL: it.BaseURL, NormalizedURL: it.NormalizedURL, ProviderHint: it.ProviderHint,
			AnthropicBaseURL: it.AnthropicBaseURL, Provider: it.Provider, DetectedBy: it.DetectedBy, SuggestedProvider: it.SuggestedProvider,
			APIKeyEnc: it.APIKeyEnc, KeyMasked: it.KeyMasked, KeyFingerprint: it.KeyFingerprint, RequestedModels: it.RequestedModels, Step: step.First})
	}
	if err := s.Store.CreateBatch(ctx, nb, copies); err != nil {
		return "", err
	}
	s.Queue.EnqueueItems(ctx, copies)
	return nb.ID, nil
}
