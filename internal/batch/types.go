package batch

import (
	"github.com/cn-relay-manager/cn-relay-manager/internal/batch/request"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// The request types and refusals are internal/batch/request's, so that crmctl and the
// API client share them without linking the database; these names are the service's.
type (
	// Request is a batch to submit.
	Request = request.Batch
	// Item is one key to import.
	Item = request.Item
	// Window overrides the confirmation window.
	Window = request.Window
	// TargetGroup is the host group the accounts join.
	TargetGroup = request.TargetGroup
	// Account holds the new accounts' scheduling settings.
	Account = request.Account
	// FieldError is a refused request naming its field.
	FieldError = request.FieldError
)

// ModeSelfService is the default access mode.
const ModeSelfService = request.ModeSelfService

// StateError is an operation the state of a batch or run does not allow (409 in the
// API). Code names the refusal: not_a_dry_run, nothing_to_roll_back, run_not_finished.
type StateError struct {
	Code    string
	Message string
}

func (e *StateError) Error() string { return e.Message }

func badField(field, msg string) *FieldError { return request.Field(field, msg) }

// options checks everything of a request but its items and returns the batch's options.
func options(r *Request) (store.BatchOptions, error) {
	if err := r.CheckOptions(); err != nil {
		return store.BatchOptions{}, err
	}
	opts := store.BatchOptions{TopUpAmount: r.TopUpAmount, ValidityDays: r.ValidityDays}
	if w := r.Window; w != nil {
		opts.WindowDeadlineS, opts.WindowScheduleS = w.DeadlineS, w.ScheduleS
	}
	tg := r.TargetGroup.Normalized()
	opts.TargetGroup = store.TargetGroup{Mode: tg.Mode, Name: tg.Name, ID: tg.ID, Prefix: tg.Prefix}
	if a := r.Account; a != nil {
		opts.Account = store.AccountSettings{Priority: a.Priority, Concurrency: a.Concurrency, Weight: a.Weight}
	}
	return opts, nil
}
