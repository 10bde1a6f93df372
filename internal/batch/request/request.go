// Package request is what a batch submission is, before anything is stored: the request
// document of POST /api/v1/batches (Batch, Item, …), its limits and the rules every
// request must meet, each refusal naming its field. The batch service (internal/batch)
// checks submissions with it; crmctl and the API client use the same types and rules
// without linking the database.
package request

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on a batch (an API answers 400 naming the field; crmctl reports the input line).
const (
	MaxItems     = 10000
	MaxKeyLen    = 512
	MaxModels    = 100
	MaxNameLen   = 200
	MaxModelLen  = 200
	MaxProvLen   = 40
	MaxIdemKey   = 200
	MaxValidDays = 36500
)

// Target group modes (TargetGroup.Mode).
const (
	GroupPerProvider = "per_provider"
	GroupExisting    = "existing"
	GroupPerItem     = "per_item"
)

// Access modes of a batch.
const (
	ModeSelfService  = "self_service"
	ModeSubscription = "subscription"
	ModeNone         = "none"
)

// Batch is a batch to submit, as the REST API takes it (POST /api/v1/batches) and as
// crmctl sends it. Fields tagged text:"free" are free text: besides printable characters
// they may hold tabs and newlines; no other field may hold a control character.
type Batch struct {
	HostID       string       `json:"host_id"`
	Name         string       `json:"name,omitempty" text:"free"`
	Mode         string       `json:"mode,omitempty"`
	DryRun       bool         `json:"dry_run,omitempty"`
	Force        bool         `json:"force,omitempty"`
	Window       *Window      `json:"window,omitempty"`
	TopUpAmount  float64      `json:"topup_amount,omitempty"`
	ValidityDays int          `json:"validity_days,omitempty"`
	TargetGroup  *TargetGroup `json:"target_group,omitempty"`
	Account      *Account     `json:"account,omitempty"`
	Items        []Item       `json:"items"`
	// IdempotencyKey makes a retried submission (the answer was lost) get the batch the
	// first one created; the REST API takes it from the Idempotency-Key header.
	IdempotencyKey string `json:"-"`
}

// Item is one key to import.
type Item struct {
	Name     string   `json:"name,omitempty" text:"free"`
	BaseURL  string   `json:"base_url"`
	APIKey   string   `json:"api_key"`
	Provider string   `json:"provider,omitempty"`
	Models   []string `json:"models,omitempty"`
}

// Window overrides the confirmation window of the process.
type Window struct {
	DeadlineS float64   `json:"deadline_s,omitempty"`
	ScheduleS []float64 `json:"schedule_s,omitempty"`
}

// TargetGroup is the host group the batch's accounts join.
type TargetGroup struct {
	Mode   string `json:"mode"`
	Name   string `json:"name,omitempty"`
	ID     int64  `json:"id,omitempty"`
	Prefix string `json:"prefix,omitempty"`
}

// Account holds the scheduling settings of the accounts a batch creates.
type Account struct {
	Priority    *int `json:"priority,omitempty"`
	Concurrency *int `json:"concurrency,omitempty"`
	Weight      *int `json:"weight,omitempty"`
}

// FieldError is a request the service refuses. Field names what is wrong, in the
// request's JSON names ("items[3].api_key", "window.deadline_s", "Idempotency-Key"), so
// that the REST API answers 400 {error:{code,message,field}} and a form shows the message
// beside its field.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Message }

// Field returns the refusal of field with msg.
func Field(field, msg string) *FieldError { return &FieldError{Field: field, Message: msg} }

func badField(field, msg string) *FieldError { return Field(field, msg) }

// ControlChar returns the first C0 control character (U+0000–U+001F) in s that a field
// may not hold: none at all, or only tab and newline in a free-text field. Neither
// database stores a NUL, and none belongs in a name, a URL, a key or an id.
func ControlChar(s string, freeText bool) (rune, bool) {
	for _, r := range s {
		if r < 0x20 && !(freeText && (r == '\t' || r == '\n')) {
			return r, true
		}
	}
	return 0, false
}

// ControlError is the refusal of a control character in field.
func ControlError(field string, r rune) *FieldError {
	return badField(field, fmt.Sprintf("%s contains the control character U+%04X; control characters are not accepted", field, r))
}

// CheckItem applies the rules every item must meet on its own, before any URL is
// interpreted: a one-token key, text fields within their limits, no control character.
// Fields are named relative to the item (api_key, models[1]).
func CheckItem(in Item) *FieldError {
	for _, f := range []struct {
		field, value string
		free         bool
	}{{"base_url", in.BaseURL, false}, {"api_key", in.APIKey, false}, {"name", in.Name, true}, {"provider", in.Provider, false}} {
		if r, bad := ControlChar(f.value, f.free); bad {
			return ControlError(f.field, r)
		}
	}
	for j, m := range in.Models {
		if r, bad := ControlChar(m, false); bad {
			return badField(fmt.Sprintf("models[%d]", j), fmt.Sprintf("model %d contains the control character U+%04X; control characters are not accepted", j+1, r))
		}
	}
	key := strings.TrimSpace(in.APIKey)
	switch {
	case key == "":
		return badField("api_key", "api_key is empty; it is required")
	case len(key) > MaxKeyLen || strings.IndexFunc(key, unicode.IsSpace) >= 0:
		// Stricter than a JSON string needs: a key is one token wherever it was pasted.
		return badField("api_key", fmt.Sprintf("api_key must be one token of at most %d characters", MaxKeyLen))
	case !utf8.ValidString(key):
		return badField("api_key", "api_key is not valid UTF-8")
	case len(in.Provider) > MaxProvLen:
		return badField("provider", fmt.Sprintf("provider is at most %d characters", MaxProvLen))
	case len(in.Name) > MaxNameLen:
		return badField("name", fmt.Sprintf("name is at most %d characters", MaxNameLen))
	case !utf8.ValidString(in.Name):
		return badField("name", "name is not valid UTF-8")
	case len(in.Models) > MaxModels:
		return badField("models", fmt.Sprintf("at most %d models per item", MaxModels))
	}
	for j, m := range in.Models {
		if len(m) > MaxModelLen || strings.TrimSpace(m) == "" || !utf8.ValidString(m) {
			return badField(fmt.Sprintf("models[%d]", j), fmt.Sprintf("model names are non-empty and at most %d characters", MaxModelLen))
		}
	}
	return nil
}

// CheckOptions checks everything of a request but its items, and fills in the default
// mode (self_service).
func (r *Batch) CheckOptions() error {
	if r.Mode == "" {
		r.Mode = ModeSelfService
	}
	switch r.Mode {
	case ModeSelfService, ModeSubscription, ModeNone:
	default:
		return badField("mode", "mode must be one of subscription, self_service, none")
	}
	switch {
	case len(r.Items) == 0:
		return badField("items", "items must hold at least one item")
	case len(r.Items) > MaxItems:
		return badField("items", fmt.Sprintf("a batch holds at most %d items", MaxItems))
	case len(r.Name) > MaxNameLen:
		return badField("name", fmt.Sprintf("name is at most %d characters", MaxNameLen))
	case r.TopUpAmount < 0:
		return badField("topup_amount", "topup_amount must be positive")
	case r.ValidityDays < 0 || r.ValidityDays > MaxValidDays:
		return badField("validity_days", fmt.Sprintf("validity_days must be between 1 and %d", MaxValidDays))
	}
	if w := r.Window; w != nil {
		if w.DeadlineS < 0 || w.DeadlineS > 24*3600 {
			return badField("window.deadline_s", "window.deadline_s must be between 1 and 86400 seconds")
		}
		for _, d := range w.ScheduleS {
			if d < 1 || d > 3600 {
				return badField("window.schedule_s", "every window.schedule_s delay must be between 1 and 3600 seconds")
			}
		}
	}
	if err := r.TargetGroup.Normalized().check(); err != nil {
		return err
	}
	return r.Account.check()
}

// groupNameChars are what a target group name or prefix may hold: the host allows more,
// but names end up in URLs, logs and the operator's scripts.
var groupNameChars = regexp.MustCompile(`^[\p{L}\p{N} ._:/()+-]+$`)

// Normalized is the target group with its mode and name trimmed and the default mode
// filled in; none at all means per_provider.
func (in *TargetGroup) Normalized() TargetGroup {
	if in == nil {
		return TargetGroup{Mode: GroupPerProvider}
	}
	tg := TargetGroup{Mode: strings.TrimSpace(in.Mode), Name: strings.TrimSpace(in.Name), ID: in.ID, Prefix: in.Prefix}
	if tg.Mode == "" {
		tg.Mode = GroupPerProvider
	}
	return tg
}

// check checks a normalized target group.
func (tg TargetGroup) check() error {
	switch tg.Mode {
	case GroupPerProvider:
		if tg.Name != "" || tg.ID != 0 {
			return badField("target_group.name", "name and id belong to target_group mode existing; per_provider names its groups itself (set prefix to change them)")
		}
		if len(tg.Prefix) > 40 || tg.Prefix != "" && !groupNameChars.MatchString(tg.Prefix) {
			return badField("target_group.prefix", "prefix is at most 40 letters, digits, spaces or ._:/()+-")
		}
	case GroupExisting:
		switch {
		case tg.Prefix != "":
			return badField("target_group.prefix", "prefix belongs to target_group mode per_provider")
		case tg.Name == "" && tg.ID == 0:
			return badField("target_group.name", "mode existing needs the group's name or id")
		case tg.Name != "" && tg.ID != 0:
			return badField("target_group.id", "give the group's name or its id, not both")
		case tg.ID < 0:
			return badField("target_group.id", "id must be a positive host group id")
		case len(tg.Name) > 100 || tg.Name != "" && !groupNameChars.MatchString(tg.Name):
			return badField("target_group.name", "name is at most 100 letters, digits, spaces or ._:/()+-")
		}
	case GroupPerItem:
		if tg.Name != "" || tg.ID != 0 || tg.Prefix != "" {
			return badField("target_group.mode", "per_item takes no name, id or prefix")
		}
	default:
		return badField("target_group.mode", "target_group.mode must be one of per_provider, existing, per_item")
	}
	return nil
}

// check checks the accounts' scheduling settings (none: the host's defaults).
func (in *Account) check() error {
	if in == nil {
		return nil
	}
	for _, f := range []struct {
		name   string
		v      *int
		lo, hi int
	}{{"priority", in.Priority, 0, 10000}, {"concurrency", in.Concurrency, 0, 10000}, {"weight", in.Weight, 1, 10000}} {
		if f.v != nil && (*f.v < f.lo || *f.v > f.hi) {
			return badField("account."+f.name, fmt.Sprintf("account.%s must be between %d and %d", f.name, f.lo, f.hi))
		}
	}
	return nil
}
