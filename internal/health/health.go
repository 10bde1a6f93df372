// Package health decides the health of one imported account from three views: a direct
// upstream check made by the product (GET /models and a 1-token chat, upstream.Prober.Check),
// the host's own view of the account (status, error message, schedulable, rate limit,
// temporary pause) and, where the provider has one, the balance. It also decides what
// safe auto-recovery may do: re-enable an account the host blocked only when the direct
// check is green now, and park (set unschedulable) an account only when the direct check
// fails with invalid_key, key_banned or no_quota. It is pure: no I/O, no clock.
package health

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/failure"
	"github.com/cn-relay-manager/cn-relay-manager/internal/host"
	"github.com/cn-relay-manager/cn-relay-manager/internal/upstream"
)

// Status is the verdict on an account. The strings are stored and shown: never rename.
type Status string

// The statuses.
const (
	// Healthy: the host routes to the account and the upstream answers.
	Healthy Status = "healthy"
	// Degraded: it serves, but something is off (a short rate limit, transient upstream
	// trouble, a low balance, an operator's pause) or the direct check was not run.
	Degraded Status = "degraded"
	// Failing: it cannot serve: the upstream refuses the key, or the host does not route
	// to it (error, unschedulable, paused, gone).
	Failing Status = "failing"
)

// Action is a host call safe auto-recovery may make. The strings are stored in the ledger.
type Action string

// The actions, in the order they are made.
const (
	ClearError             Action = "clear_error"              // POST /accounts/:id/clear-error
	SetSchedulable         Action = "set_schedulable"          // POST /accounts/:id/schedulable {true}
	ClearTempUnschedulable Action = "clear_temp_unschedulable" // DELETE /accounts/:id/temp-unschedulable
	ClearRateLimit         Action = "clear_rate_limit"         // POST /accounts/:id/clear-rate-limit
	// SetUnschedulable parks the account: POST /accounts/:id/schedulable {false}.
	SetUnschedulable Action = "set_unschedulable"
)

// Direct is the outcome of the product's own check of the upstream.
type Direct struct {
	// Err is nil when GET /models and the 1-token chat passed, else the classified
	// *failure.Error.
	Err error
	At  time.Time
}

// Input is everything known about one account at one run.
type Input struct {
	// ProviderID is the catalog provider of the item (to read the host's error message).
	ProviderID string
	// Direct is nil when the direct check was not run (no key to check with).
	Direct *Direct
	// Host is the host's account; nil when the host no longer has it.
	Host *host.Account
	// Balance is the latest reading, nil when none; LowBalance the host's threshold in the
	// balance's currency (0 = none).
	Balance    *upstream.Balance
	LowBalance float64
	// ParkedByUs: the ledger records that auto-recovery set this account unschedulable.
	// An account someone else paused is never re-enabled by the product.
	ParkedByUs bool
	// Confirmations counts consecutive direct checks, this one included, that failed with
	// the same class (0 is read as 1). Parking waits for Policy.ParkAfter of them.
	Confirmations int
	// Now is the time of the run (rate limits and pauses are compared with it).
	Now time.Time
}

// Policy tunes the decisions. Zero fields take the defaults.
type Policy struct {
	// ParkAfter is how many consecutive failing direct checks park an account (default 1:
	// the check already ran models and chat; raise it to demand confirmation across runs).
	ParkAfter int
	// RateLimitGrace: a host rate limit ending within it is left to expire (default 10
	// minutes); a longer one is cleared when the direct check is green (a 429 with a
	// reset days away would otherwise keep a working account out).
	RateLimitGrace time.Duration
}

// DefaultRateLimitGrace is Policy.RateLimitGrace's default.
const DefaultRateLimitGrace = 10 * time.Minute

// Verdict is the outcome for one account.
type Verdict struct {
	Status Status
	// Class is the failure class behind a failing or degraded verdict: the direct check's,
	// else the one the host's error message implies; "" when none applies.
	Class  failure.Class
	Reason string
	// HostBlocked: the host does not route to the account now.
	HostBlocked bool
	// HostClass is the class the host's error message implies (evidence; may be stale
	// when the direct check is green).
	HostClass failure.Class
	// BalanceLow: the balance is under the threshold or the provider refuses paid calls.
	BalanceLow bool
	// Recover lists, in order, the host calls that re-enable the account; non-empty only
	// when the host blocks it and the direct check is green now.
	Recover []Action
	// Park: set the account unschedulable (SetUnschedulable); only when the direct check
	// fails with invalid_key, key_banned or no_quota and the host still routes to it.
	Park bool
}

// MayRecover reports whether safe auto-recovery may re-enable the account now.
func (v Verdict) MayRecover() bool { return len(v.Recover) > 0 }

// parkClasses are the failures that mean the key itself is unusable.
var parkClasses = map[failure.Class]bool{failure.InvalidKey: true, failure.KeyBanned: true, failure.NoQuota: true}

// transientClasses pass by themselves: the account is degraded, not failing.
var transientClasses = map[failure.Class]bool{failure.RateLimited: true, failure.UpstreamUnreachable: true}

// hostView is what the host's account says.
type hostView struct {
	missing, disabled, errored, unschedulable bool
	tempUntil, rateUntil                      time.Time
	tempReason, errMessage                    string
	balanceLow                                bool // the host's own balance check flagged it
}

func viewOf(a *host.Account, now time.Time) hostView {
	if a == nil {
		return hostView{missing: true}
	}
	v := hostView{
		disabled:      a.Status == "disabled" || a.Status == "inactive",
		errored:       a.Status == "error",
		unschedulable: !a.Schedulable,
		errMessage:    strings.TrimSpace(a.ErrorMessage),
		tempReason:    strings.TrimSpace(a.TempUnschedulableReason),
	}
	if t, ok := hostTime(a.TempUnschedulableUntil); ok && t.After(now) {
		v.tempUntil = t
	}
	if t, ok := hostTime(a.RateLimitResetAt); ok && t.After(now) {
		v.rateUntil = t
	}
	if a.Platform != "" {
		if low, _ := a.Extra[a.Platform+"_balance_low"].(bool); low {
			v.balanceLow = true
		}
	}
	return v
}

// blocked reports whether the host will not route to the account.
func (v hostView) blocked() bool {
	return v.missing || v.disabled || v.errored || v.unschedulable || !v.tempUntil.IsZero()
}

func hostTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// Assess decides the verdict of one account.
func Assess(in Input, p Policy) (v Verdict) {
	if p.ParkAfter <= 0 {
		p.ParkAfter = 1
	}
	if p.RateLimitGrace <= 0 {
		p.RateLimitGrace = DefaultRateLimitGrace
	}
	hv := viewOf(in.Host, in.Now)
	v = Verdict{HostBlocked: hv.blocked(), HostClass: hostClass(in.ProviderID, hv.errMessage)}
	// A reading of our own is fresher than the host's flag (set on the last 402 it saw).
	v.BalanceLow = hv.balanceLow
	if in.Balance != nil {
		v.BalanceLow = in.Balance.Below(in.LowBalance)
	}
	var reasons []string
	say := func(format string, args ...any) { reasons = append(reasons, fmt.Sprintf(format, args...)) }
	defer func() { v.Reason = strings.Join(reasons, "; ") }()

	if hv.missing {
		v.Status, v.Class = Failing, classOr(in.Direct, "")
		say("the host no longer has this account")
		if in.Direct != nil && in.Direct.Err != nil {
			say("direct check: %s", message(in.Direct.Err))
		}
		return v
	}

	switch {
	case in.Direct == nil:
		// Without our own evidence nothing is re-enabled or parked.
		v.Status, v.Class = Degraded, v.HostClass
		say("direct check not run")
		describeHost(hv, say)
		if v.HostBlocked {
			v.Status = Failing
		}
	case in.Direct.Err != nil:
		class := failure.ClassOf(in.Direct.Err)
		v.Class = class
		say("direct check: %s", message(in.Direct.Err))
		describeHost(hv, say)
		v.Status = Failing
		if transientClasses[class] && !v.HostBlocked {
			v.Status = Degraded
		}
		confirmations := max(in.Confirmations, 1)
		routable := !hv.disabled && !hv.unschedulable
		if parkClasses[class] && routable {
			if confirmations >= p.ParkAfter {
				v.Park = true
			} else {
				say("park after %d consecutive failing checks (%d so far)", p.ParkAfter, confirmations)
			}
		}
	default:
		// The upstream answers now.
		v.Status = Healthy
		describeHost(hv, say)
		switch {
		case hv.disabled:
			v.Status, v.Class = Failing, v.HostClass
			say("disabled on the host by an operator: left alone")
		case hv.unschedulable && !hv.errored && !in.ParkedByUs:
			v.Status, v.Class = Failing, v.HostClass
			say("paused on the host by someone else: left alone")
		default:
			if hv.errored {
				v.Recover = append(v.Recover, ClearError)
			}
			if hv.unschedulable {
				// 0.1.179 sets schedulable false with the error and clear-error keeps it so.
				v.Recover = append(v.Recover, SetSchedulable)
			}
			if !hv.tempUntil.IsZero() {
				v.Recover = append(v.Recover, ClearTempUnschedulable)
			}
			if !hv.rateUntil.IsZero() {
				if hv.rateUntil.Sub(in.Now) > p.RateLimitGrace {
					v.Recover = append(v.Recover, ClearRateLimit)
				} else if v.Status == Healthy {
					v.Status, v.Class = Degraded, failure.RateLimited
				}
			}
			if v.MayRecover() {
				v.Status, v.Class = Failing, v.HostClass
				say("the upstream answers the direct check: safe to recover")
			}
		}
	}

	if v.BalanceLow {
		describeBalance(in, say)
		if v.Status == Healthy {
			v.Status = Degraded
		}
	}
	return v
}

func describeHost(hv hostView, say func(string, ...any)) {
	switch {
	case hv.errored && hv.errMessage != "":
		say("host: status error (%s)", snippet(hv.errMessage, 200))
	case hv.errored:
		say("host: status error")
	}
	if hv.unschedulable {
		say("host: unschedulable")
	}
	if !hv.tempUntil.IsZero() {
		if hv.tempReason != "" {
			say("host: paused until %s (%s)", hv.tempUntil.UTC().Format(time.RFC3339), snippet(hv.tempReason, 120))
		} else {
			say("host: paused until %s", hv.tempUntil.UTC().Format(time.RFC3339))
		}
	}
	if !hv.rateUntil.IsZero() {
		say("host: rate limited until %s", hv.rateUntil.UTC().Format(time.RFC3339))
	}
}

func describeBalance(in Input, say func(string, ...any)) {
	b := in.Balance
	switch {
	case b != nil && !b.Available:
		say("balance: %s %s, the provider refuses paid calls", money(b.Amount), b.Currency)
	case b != nil:
		say("balance: %s %s, below %s", money(b.Amount), b.Currency, money(in.LowBalance))
	default:
		say("the host's balance check flagged the balance low")
	}
}

func classOr(d *Direct, c failure.Class) failure.Class {
	if d != nil && d.Err != nil {
		return failure.ClassOf(d.Err)
	}
	return c
}

func message(err error) string {
	var fe *failure.Error
	if errors.As(err, &fe) {
		return string(fe.Class) + ": " + fe.Message
	}
	return err.Error()
}

// hostStatus finds the upstream status the host quotes in its error message, e.g.
// "Payment required (402): Insufficient Balance" or "Authentication failed (401): {…}".
var hostStatus = regexp.MustCompile(`\((\d{3})\)\s*:?\s*`)

// hostClass classifies the upstream answer the host quotes in an account's error
// message, with the prober's rules; "" when the message quotes none.
func hostClass(providerID, msg string) failure.Class {
	m := hostStatus.FindStringSubmatchIndex(msg)
	if m == nil {
		return ""
	}
	status, err := strconv.Atoi(msg[m[2]:m[3]])
	if err != nil || status < 400 {
		return ""
	}
	body := msg[m[1]:]
	if body == "" {
		body = msg
	}
	if fe := upstream.Classify(providerID, status, nil, []byte(body)); fe != nil {
		return fe.Class
	}
	return ""
}

func money(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

func snippet(s string, n int) string {
	r := []rune(strings.Join(strings.Fields(s), " "))
	if len(r) <= n {
		return string(r)
	}
	return string(r[:n-1]) + "…"
}
