// Package accounts is the service behind the pages and API routes of the work after the
// import: a host's settings (safe auto-recovery and parking opt-ins, the low-balance
// threshold), its notification webhooks (URL and signing secret sealed at rest, never
// shown), a re-verification asked for now, the undo of an automatic action and a test
// message to a webhook. It writes through the store and puts work on the queue; it never
// calls a host or an upstream (the test message goes to the operator's own webhook).
package accounts

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/batch"
	"github.com/cn-relay-manager/cn-relay-manager/internal/batch/request"
	"github.com/cn-relay-manager/cn-relay-manager/internal/notify"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// Queue is the part of the job queue the service needs (jobs.Queue).
type Queue interface {
	EnqueueVerifyRun(ctx context.Context, run *store.VerifyRun) error
	EnqueueUndo(ctx context.Context, checkID string) error
}

// Service runs the operations.
type Service struct {
	Store *store.Store
	Box   *secret.Box
	Queue Queue
	// Sender sends the test message (nil: an HTTP notify.Sender).
	Sender notify.Poster
}

// Limits of the requests.
const (
	MaxSpread      = 24 * time.Hour // the longest spread of a run asked for
	maxWebhookName = 200
	maxURL         = 2000
	maxSecret      = 500
	// askedRunSlack is how long past its spread a run asked for may take before the
	// upkeep ends it.
	askedRunSlack = time.Hour
)

// Settings is a host's settings with its webhooks (credentials never included).
type Settings struct {
	store.HostSettings
	Webhooks []store.Webhook `json:"webhooks"`
}

// SettingsRequest changes a host's settings; nil fields are left as they are.
type SettingsRequest struct {
	AutoRecover *bool    `json:"auto_recover,omitempty"`
	ParkFailing *bool    `json:"park_failing,omitempty"`
	LowBalance  *float64 `json:"low_balance,omitempty"`
}

// WebhookRequest adds a webhook to a host.
type WebhookRequest struct {
	Name   string   `json:"name,omitempty"`
	Format string   `json:"format"`
	URL    string   `json:"url"`
	Secret string   `json:"secret,omitempty"`
	Lang   string   `json:"lang,omitempty"`
	Events []string `json:"events,omitempty"`
}

// TestResult is the outcome of a test message.
type TestResult struct {
	Delivered bool   `json:"delivered"`
	Attempts  int    `json:"attempts"`
	Error     string `json:"error,omitempty"`
}

func (s *Service) host(ctx context.Context, hostID string) (*store.Host, error) {
	return s.Store.GetHost(ctx, hostID)
}

// Settings returns a host's settings and webhooks.
func (s *Service) Settings(ctx context.Context, hostID string) (*Settings, error) {
	if _, err := s.host(ctx, hostID); err != nil {
		return nil, err
	}
	hs, err := s.Store.GetHostSettings(ctx, hostID)
	if err != nil {
		return nil, err
	}
	hooks, err := s.Store.ListWebhooks(ctx, hostID)
	if err != nil {
		return nil, err
	}
	return &Settings{HostSettings: *hs, Webhooks: hooks}, nil
}

// PutSettings changes a host's settings.
func (s *Service) PutSettings(ctx context.Context, hostID string, req SettingsRequest) (*Settings, error) {
	if _, err := s.host(ctx, hostID); err != nil {
		return nil, err
	}
	hs, err := s.Store.GetHostSettings(ctx, hostID)
	if err != nil {
		return nil, err
	}
	if req.AutoRecover != nil {
		hs.AutoRecover = *req.AutoRecover
	}
	if req.ParkFailing != nil {
		hs.ParkFailing = *req.ParkFailing
	}
	if req.LowBalance != nil {
		v := *req.LowBalance
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) || v > 1e9 {
			return nil, request.Field("low_balance", "low_balance is a threshold of 0 (off) up to 1e9, in the balance's currency")
		}
		hs.LowBalance = v
	}
	if err := s.Store.PutHostSettings(ctx, hs); err != nil {
		return nil, err
	}
	return s.Settings(ctx, hostID)
}

// AddWebhook validates and stores a webhook; its URL and secret are sealed.
func (s *Service) AddWebhook(ctx context.Context, hostID string, req WebhookRequest) (*store.Webhook, error) {
	if _, err := s.host(ctx, hostID); err != nil {
		return nil, err
	}
	req.Name, req.URL, req.Secret = strings.TrimSpace(req.Name), strings.TrimSpace(req.URL), strings.TrimSpace(req.Secret)
	if len(req.Name) > maxWebhookName {
		return nil, request.Field("name", fmt.Sprintf("name is at most %d characters", maxWebhookName))
	}
	if len(req.URL) > maxURL {
		return nil, request.Field("url", fmt.Sprintf("url is at most %d characters", maxURL))
	}
	if len(req.Secret) > maxSecret {
		return nil, request.Field("secret", fmt.Sprintf("secret is at most %d characters", maxSecret))
	}
	if req.Lang == "" {
		req.Lang = "en"
	}
	kind := notify.Kind(req.Format)
	known := false
	for _, k := range notify.Kinds {
		known = known || k == kind
	}
	if !known {
		return nil, request.Field("format", "format is one of generic, feishu, dingtalk, wecom, slack")
	}
	t := notify.Target{Kind: kind, URL: req.URL, Secret: req.Secret, Lang: req.Lang}
	if err := t.Validate(); err != nil {
		field := "url"
		switch {
		case strings.Contains(err.Error(), "language"):
			field = "lang"
		case strings.Contains(err.Error(), "secret"):
			field = "secret"
		}
		return nil, request.Field(field, strings.TrimPrefix(err.Error(), "notify: "))
	}
	events := []string{}
	for i, e := range req.Events {
		ok := false
		for _, known := range notify.EventTypes {
			ok = ok || string(known) == e
		}
		if !ok {
			return nil, request.Field(fmt.Sprintf("events[%d]", i), "events are batch_finished, account_failing, balance_low or recovery_done")
		}
		if !contains(events, e) {
			events = append(events, e)
		}
	}
	w := &store.Webhook{HostID: hostID, Name: req.Name, Format: req.Format, URLShown: notify.RedactURL(req.URL), Lang: req.Lang, Events: events}
	var err error
	if w.URLEnc, err = s.Box.Seal(req.URL); err != nil {
		return nil, err
	}
	if req.Secret != "" {
		if w.SecretEnc, err = s.Box.Seal(req.Secret); err != nil {
			return nil, err
		}
	}
	if err := s.Store.CreateWebhook(ctx, w); err != nil {
		return nil, err
	}
	return w, nil
}

// DeleteWebhook removes a webhook (what is pending for it is dropped).
func (s *Service) DeleteWebhook(ctx context.Context, id string) error {
	return s.Store.DeleteWebhook(ctx, id)
}

// TestWebhook sends a sample event (of eventType; "" = account_failing) to a webhook at
// once, in one attempt, and says what happened. Nothing is stored.
func (s *Service) TestWebhook(ctx context.Context, id, eventType string) (*TestResult, error) {
	w, err := s.Store.GetWebhook(ctx, id)
	if err != nil {
		return nil, err
	}
	h, err := s.host(ctx, w.HostID)
	if err != nil {
		return nil, err
	}
	u, err := s.Box.Open(w.URLEnc)
	if err != nil {
		return nil, errors.New("the webhook URL cannot be opened (was the master key changed?)")
	}
	sec := ""
	if w.SecretEnc != "" {
		if sec, err = s.Box.Open(w.SecretEnc); err != nil {
			return nil, errors.New("the webhook secret cannot be opened (was the master key changed?)")
		}
	}
	ev, err := SampleEvent(notify.EventType(eventType), h.Name)
	if err != nil {
		return nil, err
	}
	sender := s.Sender
	if sender == nil {
		sender = &notify.Sender{}
	}
	n := &notify.Notifier{Sender: sender, Policy: notify.Policy{MaxAttempts: 1}}
	attempts, err := n.Deliver(ctx, ev, notify.Target{Kind: notify.Kind(w.Format), URL: u, Secret: sec, Lang: w.Lang})
	res := &TestResult{Delivered: err == nil, Attempts: attempts}
	if err != nil {
		res.Error = err.Error() // delivery errors name the destination by scheme://host only
	}
	return res, nil
}

// SampleEvent is the test message of a type: plausible values, marked as a test.
func SampleEvent(t notify.EventType, hostName string) (notify.Event, error) {
	if t == "" {
		t = notify.AccountFailing
	}
	now := time.Now().UTC()
	ev := notify.Event{ID: "test-" + secret.RandomToken(8), Type: t, At: now, Host: hostName}
	acct := &notify.Account{HostAccountID: 1, Name: "deepseek-…abcd crm-test", Provider: "deepseek", KeyMasked: "sk-abc…abcd",
		Health: "failing", Class: "no_quota", Reason: "test message from cn-relay-manager: nothing happened"}
	switch t {
	case notify.BatchFinished:
		ev.Batch = &notify.Batch{ID: "test", Name: "test message", Status: "succeeded", Total: 1, Ready: 1}
	case notify.AccountFailing:
		ev.Account = acct
	case notify.BalanceLow:
		ev.Account = acct
		ev.Balance = &notify.Balance{Amount: 1.5, Currency: "CNY", Threshold: 10, ReadAt: now}
	case notify.RecoveryDone:
		ev.Account = acct
		ev.Recovery = &notify.Recovery{Actions: []string{"clear_error", "set_schedulable"}, Proven: true, Detail: "test message"}
	default:
		return ev, request.Field("event", "event is batch_finished, account_failing, balance_low or recovery_done")
	}
	return ev, nil
}

// RunNow starts a re-verification of a host at once: its checks are spread over spread
// (0 = all due now; the host and upstream caps still bound them). A host runs one
// re-verification at a time (409 run_active).
func (s *Service) RunNow(ctx context.Context, hostID string, spread time.Duration) (*store.VerifyRun, error) {
	if _, err := s.host(ctx, hostID); err != nil {
		return nil, err
	}
	if spread < 0 || spread > MaxSpread {
		return nil, request.Field("spread_s", fmt.Sprintf("spread_s is 0 to %d seconds", int(MaxSpread/time.Second)))
	}
	run, err := s.Store.StartVerifyRun(ctx, hostID, "", time.Now().Add(spread+askedRunSlack), spread)
	if errors.Is(err, store.ErrRunActive) {
		return nil, &batch.StateError{Code: "run_active", Message: "a re-verification of this host is running: " + err.Error()}
	}
	if err != nil {
		return nil, err
	}
	if err := s.Queue.EnqueueVerifyRun(ctx, run); err != nil {
		_ = s.Store.FailVerifyRun(ctx, run, "could not be queued: "+err.Error())
		return nil, err
	}
	return run, nil
}

// Undo asks for the reversal of the host change a check made: only a check that changed
// something, only the account's latest such check, and only once.
func (s *Service) Undo(ctx context.Context, checkID string) (*store.AccountCheck, error) {
	c, err := s.Store.GetAccountCheck(ctx, checkID)
	if err != nil {
		return nil, err
	}
	if c.ActionDetail.Undo == "" {
		return nil, &batch.StateError{Code: "not_undoable", Message: "this check made no host change that can be undone"}
	}
	if c.UndoState != "" {
		return nil, &batch.StateError{Code: "already_undone", Message: "the undo of this check is " + c.UndoState}
	}
	hist, err := s.Store.AccountHistory(ctx, c.ItemID, 100)
	if err != nil {
		return nil, err
	}
	for _, h := range hist {
		if h.ActionDetail.Undo != "" {
			if h.ID != c.ID {
				return nil, &batch.StateError{Code: "not_latest", Message: "a later check (" + h.ID + ") changed this account since; undo that one"}
			}
			break
		}
	}
	won, err := s.Store.SetCheckUndo(ctx, c.ID, "", store.UndoQueued, "")
	if err != nil {
		return nil, err
	}
	if !won {
		return nil, &batch.StateError{Code: "already_undone", Message: "the undo of this check was asked for already"}
	}
	if err := s.Queue.EnqueueUndo(ctx, c.ID); err != nil {
		_, _ = s.Store.SetCheckUndo(ctx, c.ID, store.UndoQueued, "", "")
		return nil, err
	}
	c.UndoState = store.UndoQueued
	return c, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
