// Package notify turns events of the product (a batch finished, an account is failing, a
// balance is low, an account was recovered) into webhook deliveries: generic JSON, or the
// message formats of Feishu/Lark custom bots, DingTalk custom robots, WeCom group robots and
// Slack incoming webhooks. It formats and sends; it stores nothing and logs nothing.
//
// It is built to be driven by an outbox: Format is pure (event, target, time → request),
// Send performs one attempt and says whether another may succeed, and Policy says when.
// Every request carries the event's ID as its delivery ID, so a receiver can drop a
// delivery it has already seen after a retry or a worker restart.
//
// A webhook URL is a credential (the token is in its path or query) and so is a signing
// secret: callers keep both sealed at rest, this package never writes either into an error,
// a String or a JSON rendering of a Target (only scheme://host of the URL).
package notify

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// EventType names what happened. The strings are stored and sent: never rename them.
type EventType string

// The event types.
const (
	BatchFinished  EventType = "batch_finished"
	AccountFailing EventType = "account_failing"
	BalanceLow     EventType = "balance_low"
	RecoveryDone   EventType = "recovery_done"
)

// EventTypes lists every event type, for validation and documentation.
var EventTypes = []EventType{BatchFinished, AccountFailing, BalanceLow, RecoveryDone}

// Event is one thing that happened, with the parts its type needs: Batch for
// batch_finished, Account for account_failing, Account and Balance for balance_low,
// Account and Recovery for recovery_done.
type Event struct {
	// ID is stable for the event (the outbox row's id): it is the delivery ID receivers
	// de-duplicate on, the same for every attempt.
	ID   string    `json:"id"`
	Type EventType `json:"type"`
	// At is when it happened.
	At time.Time `json:"occurred_at"`
	// Host is the sub2api host's name as the operator calls it.
	Host string `json:"host"`
	// URL is the page that shows the batch or account, "" when none.
	URL string `json:"url,omitempty"`

	Batch    *Batch    `json:"batch,omitempty"`
	Account  *Account  `json:"account,omitempty"`
	Balance  *Balance  `json:"balance,omitempty"`
	Recovery *Recovery `json:"recovery,omitempty"`
}

// Batch is a finished batch.
type Batch struct {
	ID        string `json:"id"`
	Name      string `json:"name,omitempty"`
	Status    string `json:"status"`
	Total     int    `json:"total"`
	Ready     int    `json:"ready"`
	Failed    int    `json:"failed"`
	Cancelled int    `json:"cancelled,omitempty"`
	// Classes counts the failed items per failure class.
	Classes map[string]int `json:"failure_classes,omitempty"`
}

// Account is an imported account as the re-verification saw it.
type Account struct {
	HostAccountID int64  `json:"host_account_id,omitempty"`
	Name          string `json:"name,omitempty"`
	BatchID       string `json:"batch_id,omitempty"`
	ItemID        string `json:"item_id,omitempty"`
	Provider      string `json:"provider,omitempty"`
	// KeyMasked is the upstream key as the product shows it (first and last characters).
	KeyMasked string `json:"key_masked,omitempty"`
	// Health is healthy, degraded or failing; Class the failure class, Reason why.
	Health string     `json:"health,omitempty"`
	Class  string     `json:"class,omitempty"`
	Reason string     `json:"reason,omitempty"`
	Since  *time.Time `json:"since,omitempty"`
	// Parked: the product set the account unschedulable on the host because of it.
	Parked bool `json:"parked,omitempty"`
}

// Balance is a balance reading under the host's threshold.
type Balance struct {
	Amount    float64   `json:"amount"`
	Currency  string    `json:"currency"`
	Threshold float64   `json:"threshold"`
	ReadAt    time.Time `json:"read_at"`
}

// Recovery is what safe auto-recovery did to an account.
type Recovery struct {
	// Actions are the host calls made, in order (e.g. clear_error, set_schedulable).
	Actions []string `json:"actions"`
	// Proven: an end-user call through the gateway succeeded afterwards.
	Proven bool   `json:"proven"`
	Detail string `json:"detail,omitempty"`
}

// Validate checks that the event has an ID, a known type and the parts its type needs.
func (e Event) Validate() error {
	if strings.TrimSpace(e.ID) == "" {
		return errors.New("notify: event has no ID")
	}
	switch e.Type {
	case BatchFinished:
		if e.Batch == nil {
			return fmt.Errorf("notify: %s event without batch", e.Type)
		}
	case AccountFailing:
		if e.Account == nil {
			return fmt.Errorf("notify: %s event without account", e.Type)
		}
	case BalanceLow:
		if e.Account == nil || e.Balance == nil {
			return fmt.Errorf("notify: %s event needs account and balance", e.Type)
		}
	case RecoveryDone:
		if e.Account == nil || e.Recovery == nil {
			return fmt.Errorf("notify: %s event needs account and recovery", e.Type)
		}
	default:
		return fmt.Errorf("notify: unknown event type %q", e.Type)
	}
	return nil
}

// Kind is the message format a target receives.
type Kind string

// The kinds.
const (
	Generic  Kind = "generic"
	Feishu   Kind = "feishu"
	DingTalk Kind = "dingtalk"
	WeCom    Kind = "wecom"
	Slack    Kind = "slack"
)

// Kinds lists every kind of target.
var Kinds = []Kind{Generic, Feishu, DingTalk, WeCom, Slack}

// Target is one webhook. URL and Secret are credentials: keep them sealed at rest.
type Target struct {
	// Kind is the message format: generic JSON or a chat platform's robot.
	Kind Kind
	// URL is the webhook address as the platform issued it (its token included).
	URL string
	// Secret signs the requests: Feishu's and DingTalk's signature setting ("签名校验",
	// "加签"), or an HMAC-SHA256 over the body for generic receivers. "" = unsigned. WeCom
	// group robots and Slack incoming webhooks do not sign.
	Secret string
	// Lang is the language of the message text: "en" (default) or "zh".
	Lang string
}

// Validate checks the target without contacting it.
func (t Target) Validate() error {
	switch t.Kind {
	case Generic, Feishu, DingTalk, WeCom, Slack:
	default:
		return fmt.Errorf("notify: unknown format %q", t.Kind)
	}
	u, err := url.Parse(strings.TrimSpace(t.URL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// Never quote the URL: it holds the token.
		return fmt.Errorf("notify: %s webhook URL must be an http(s) URL with a host", t.Kind)
	}
	if t.Secret != "" && (t.Kind == WeCom || t.Kind == Slack) {
		return fmt.Errorf("notify: %s webhooks are not signed; leave the secret empty", t.Kind)
	}
	if t.Kind == DingTalk && u.Query().Get("access_token") == "" {
		return errors.New("notify: a DingTalk robot URL carries access_token in its query")
	}
	switch t.Lang {
	case "", "en", "zh":
	default:
		return fmt.Errorf("notify: language %q is not en or zh", t.Lang)
	}
	return nil
}

// String shows the format and the destination's scheme://host, never the token or secret.
func (t Target) String() string {
	return fmt.Sprintf("%s webhook %s", t.Kind, RedactURL(t.URL))
}

// GoString keeps the credentials out of %#v.
func (t Target) GoString() string { return "notify.Target{" + t.String() + "}" }

// LogValue keeps the credentials out of slog records.
func (t Target) LogValue() slog.Value {
	return slog.GroupValue(slog.String("format", string(t.Kind)), slog.String("url", RedactURL(t.URL)),
		slog.Bool("signed", t.Secret != ""))
}

// MarshalJSON renders the target without its credentials (the sealed values are the
// caller's to store).
func (t Target) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Kind   Kind   `json:"format"`
		URL    string `json:"url"`
		Signed bool   `json:"signed"`
		Lang   string `json:"lang,omitempty"`
	}{t.Kind, RedactURL(t.URL), t.Secret != "", t.Lang})
}

// RedactURL keeps scheme://host[:port] of a webhook URL: the token in path or query is
// never shown. An unparsable URL becomes "(webhook)".
func RedactURL(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" || u.Scheme == "" {
		return "(webhook)"
	}
	return u.Scheme + "://" + u.Host
}
