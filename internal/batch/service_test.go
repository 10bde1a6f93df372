package batch

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cn-relay-manager/cn-relay-manager/internal/batch/request"
	"github.com/cn-relay-manager/cn-relay-manager/internal/catalog"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/step"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

type fakeQueue struct {
	items     int
	rollbacks []string
	runs      []string
}

func (q *fakeQueue) EnqueueItems(_ context.Context, items []*store.Item) int {
	q.items += len(items)
	return len(items)
}
func (q *fakeQueue) EnqueueRollback(_ context.Context, id string) error {
	q.rollbacks = append(q.rollbacks, id)
	return nil
}
func (q *fakeQueue) EnqueueReconcile(_ context.Context, r *store.ReconcileRun) error {
	q.runs = append(q.runs, r.ID)
	return nil
}
func (q *fakeQueue) EnqueueRepair(_ context.Context, r *store.ReconcileRun) error {
	q.runs = append(q.runs, "repair:"+r.ID)
	return nil
}

type emptyLedger struct{}

func (emptyLedger) CheckRollback(context.Context, string) error { return store.ErrNothingRecorded }

func newService(t *testing.T) (*Service, *fakeQueue, *store.Host) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "batch.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	h := &store.Host{Name: "h", AdminURL: "http://h.example", PublicURL: "http://h.example", AuthKind: "api_key", Status: "ok"}
	if err := st.CreateHost(ctx, h); err != nil {
		t.Fatal(err)
	}
	box, err := secret.NewBox("batch-test-master-key-0000")
	if err != nil {
		t.Fatal(err)
	}
	q := &fakeQueue{}
	return &Service{Store: st, Queue: q, Box: box, Catalog: catalog.Default(), Rollbacks: emptyLedger{}}, q, h
}

const key = "sk-0123456789abcdef0123456789abcdef"

// A refused request names its field the way the REST API reports it and a form shows it.
func TestSubmitNamesTheField(t *testing.T) {
	s, q, h := newService(t)
	ctx := context.Background()
	ok := Item{BaseURL: "https://api.deepseek.com", APIKey: key}
	for _, c := range []struct {
		req   Request
		field string
		msg   string // a part of the message, when it matters
	}{
		{Request{Items: []Item{ok}}, "host_id", ""},
		{Request{HostID: "nope", Items: []Item{ok}}, "host_id", ""},
		{Request{HostID: h.ID}, "items", ""},
		{Request{HostID: h.ID, Mode: "free", Items: []Item{ok}}, "mode", ""},
		{Request{HostID: h.ID, Items: []Item{ok}, Window: &Window{ScheduleS: []float64{0.5}}}, "window.schedule_s", ""},
		{Request{HostID: h.ID, Items: []Item{ok}, TargetGroup: &TargetGroup{Mode: "existing"}}, "target_group.name", ""},
		{Request{HostID: h.ID, Items: []Item{ok}, Account: &Account{Weight: new(int)}}, "account.weight", ""},
		// Fields are paths into the request (0-based); messages count items from 1.
		{Request{HostID: h.ID, Items: []Item{ok, {BaseURL: ok.BaseURL, APIKey: "two tokens"}}}, "items[1].api_key", "item 2: api_key must be one token"},
		{Request{HostID: h.ID, Items: []Item{ok, ok}}, "items[1].api_key", "item 2: the same key is already item 1 of this batch"},
		{Request{HostID: h.ID, Items: []Item{{BaseURL: ok.BaseURL, APIKey: key, Models: []string{"a", " "}}}}, "items[0].models[1]", "item 1: "},
		{Request{HostID: h.ID, Items: []Item{ok, {BaseURL: "ftp://x", APIKey: key + "2"}}}, "items[1].base_url", "item 2: "},
		{Request{HostID: h.ID, Items: []Item{ok}, IdempotencyKey: "a\x00b"}, "Idempotency-Key", ""},
	} {
		_, err := s.Submit(ctx, c.req)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || fe.Message == "" || !strings.Contains(fe.Message, c.msg) {
			t.Errorf("%+v: %v, want a FieldError on %s saying %q", c.req, err, c.field, c.msg)
		}
	}
	if q.items != 0 {
		t.Fatalf("a refused request enqueued %d items", q.items)
	}
}

// A submission stores the items at the first step and enqueues them; the same
// idempotency key replays the batch instead of importing again.
func TestSubmitAndReplay(t *testing.T) {
	s, q, h := newService(t)
	ctx := context.Background()
	req := Request{HostID: h.ID, Items: []Item{{BaseURL: "https://api.deepseek.com", APIKey: key}}, IdempotencyKey: "k1"}
	sub, err := s.Submit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if sub.Replayed || sub.Enqueued != 1 || len(sub.Items) != 1 || sub.Items[0].Step != step.First || sub.Batch.Mode != ModeSelfService {
		t.Fatalf("submitted: %+v", sub)
	}
	if strings.Contains(sub.Items[0].APIKeyEnc, key) || sub.Items[0].KeyMasked == key {
		t.Fatal("the key is stored in the clear")
	}
	again, err := s.Submit(ctx, req)
	if err != nil || !again.Replayed || again.Batch.ID != sub.Batch.ID || len(again.Items) != 1 || q.items != 1 {
		t.Fatalf("replay: %+v %v (enqueued %d)", again, err, q.items)
	}
	// The operations refuse what the batch's state does not allow, with a code.
	var se *StateError
	if _, err := s.ImportDryRun(ctx, sub.Batch.ID); !errors.As(err, &se) || se.Code != "not_a_dry_run" {
		t.Fatalf("import of a real batch: %v", err)
	}
	if err := s.Rollback(ctx, sub.Batch.ID); !errors.As(err, &se) || se.Code != "nothing_to_roll_back" {
		t.Fatalf("rollback with an empty ledger: %v", err)
	}
	run, err := s.Reconcile(ctx, sub.Batch.ID)
	if err != nil || run.Status != "queued" || len(q.runs) != 1 {
		t.Fatalf("reconcile: %+v %v", run, err)
	}
	if _, err := s.Repair(ctx, run.ID); !errors.As(err, &se) || se.Code != "run_not_finished" {
		t.Fatalf("repair of a queued run: %v", err)
	}
	if _, err := s.Retry(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("retry of an unknown batch: %v", err)
	}
}

// The request's vocabulary of target group modes is the store's.
func TestGroupModesAreTheStores(t *testing.T) {
	for _, m := range [][2]string{{request.GroupPerProvider, store.GroupPerProvider}, {request.GroupExisting, store.GroupExisting}, {request.GroupPerItem, store.GroupPerItem}} {
		if m[0] != m[1] {
			t.Errorf("request %q, store %q", m[0], m[1])
		}
	}
}
