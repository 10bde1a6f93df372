// Package failure names the failure classes of product §5 and the error type that carries
// one. A class is decided once, where the HTTP answer arrives (upstream prober, host
// client, pipeline for the cross-checks), and travels unchanged to the store and the API.
package failure

import (
	"errors"
	"fmt"
	"time"
)

// Class is one failure class of product §5.
type Class string

// The failure classes. The strings are stored and returned by the API: never rename them.
const (
	InvalidKey           Class = "invalid_key"
	KeyBanned            Class = "key_banned"
	NoQuota              Class = "no_quota"
	RateLimited          Class = "rate_limited"
	RegionBlocked        Class = "region_blocked"
	ModelNotFound        Class = "model_not_found"
	UpstreamUnreachable  Class = "upstream_unreachable"
	UpstreamIncompatible Class = "upstream_incompatible"
	HostRejected         Class = "host_rejected"
	HostCompatibilityGap Class = "host_compatibility_gap"
	// HostPolicy: the host's own settings forbid what the item needs (its outbound URL
	// policy refuses the upstream base URL); an administrator of the host must change them.
	HostPolicy          Class = "host_policy"
	ConfirmationTimeout Class = "confirmation_timeout"
	// MasterKeyMismatch: a secret stored for the item (its upstream key, or its host's
	// admin credentials) cannot be opened with this process's CRM_MASTER_KEY: the process
	// runs with another master key than the one the secret was sealed with. Retrying
	// cannot help until the process runs with the right key.
	MasterKeyMismatch Class = "master_key_mismatch"
	Internal          Class = "internal"
)

// All lists every class, for validation and documentation.
var All = []Class{InvalidKey, KeyBanned, NoQuota, RateLimited, RegionBlocked, ModelNotFound,
	UpstreamUnreachable, UpstreamIncompatible, HostRejected, HostCompatibilityGap, HostPolicy,
	ConfirmationTimeout, MasterKeyMismatch, Internal}

// Error is an error with a failure class. Retryable says whether trying the same step
// again later can succeed (rate limits, network trouble); RetryAfter is the server's hint.
type Error struct {
	Class      Class
	Message    string // human readable, already free of secrets
	Retryable  bool
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Class, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Class, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// New returns a non-retryable classified error.
func New(c Class, format string, args ...any) *Error {
	return &Error{Class: c, Message: fmt.Sprintf(format, args...)}
}

// ClassOf returns the class of err, or Internal when err carries none.
func ClassOf(err error) Class {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Class
	}
	return Internal
}

// IsRetryable reports whether err is a classified error marked retryable.
func IsRetryable(err error) bool {
	var fe *Error
	return errors.As(err, &fe) && fe.Retryable
}
