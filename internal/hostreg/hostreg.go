// Package hostreg is the host service: it registers a sub2api host, changes its name, URLs
// and admin credentials, tests its connection and removes it. Every change of how the host
// is reached is checked against the host (a read-only probe) before anything is saved. The
// REST API and the web pages call it and only translate HTTP; refusals of the request are
// *request.FieldError naming the field, refusals the host or the stored state decide are
// *Error with a code.
package hostreg

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cn-relay-manager/cn-relay-manager/internal/batch/request"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// Limits of a host's settings.
const (
	MaxNameLen  = 200
	MaxEmailLen = 320
	MaxURLLen   = 2000
	MaxKeyLen   = 512
)

// Auth kinds of a host.
const (
	AuthAPIKey   = "api_key"
	AuthPassword = "password"
)

// Prober fills a host's version, profile and status by asking the host (read-only); it
// returns an error only when the host cannot be reached at all (pipeline.Engine).
type Prober interface {
	ProbeHost(ctx context.Context, h *store.Host) error
}

// Kind says what decided a refusal (the API's status: conflict 409, host 422).
type Kind int

// Kinds of refusal.
const (
	// Conflict: the stored state does not allow it (a name taken, objects in the ledger).
	Conflict Kind = iota
	// HostRefused: the host answered no, or did not answer (unreachable, credentials refused).
	HostRefused
)

// Error is a refusal the host or the stored state decided. Code names it: host_exists,
// host_unreachable, host_auth_failed, host_in_use, host_busy.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	Field   string           // the request field it concerns, "" when none
	Usage   *store.HostUsage // for host_in_use and host_busy: what the host still holds
}

func (e *Error) Error() string { return e.Message }

// Settings are a host's name, URLs and admin credentials as an operator gives them. For a
// change, empty fields keep what is stored.
type Settings struct {
	Name          string `json:"name,omitempty"`
	AdminURL      string `json:"admin_url,omitempty"`
	PublicURL     string `json:"public_url,omitempty"`
	AdminAPIKey   string `json:"admin_api_key,omitempty"`
	AdminEmail    string `json:"admin_email,omitempty"`
	AdminPassword string `json:"admin_password,omitempty"`
}

// Service runs the host operations.
type Service struct {
	Store  *store.Store
	Box    *secret.Box // seals the admin credentials
	Prober Prober
}

// Register checks the settings, probes the host with them and stores it. The host must
// answer and accept the credentials; nothing is stored otherwise.
func (s *Service) Register(ctx context.Context, in Settings) (*store.Host, error) {
	h := &store.Host{}
	name := strings.TrimSpace(in.Name)
	if err := checkName(name); err != nil {
		return nil, err
	}
	h.Name = name
	var err error
	if h.AdminURL, err = httpURL("admin_url", in.AdminURL); err != nil {
		return nil, err
	}
	h.PublicURL = h.AdminURL
	if strings.TrimSpace(in.PublicURL) != "" {
		if h.PublicURL, err = httpURL("public_url", in.PublicURL); err != nil {
			return nil, err
		}
	}
	if in.AdminAPIKey == "" && in.AdminEmail == "" {
		return nil, request.Field("admin_api_key", "admin_api_key (or admin_email and admin_password) is required")
	}
	if err := s.setCredentials(h, in); err != nil {
		return nil, err
	}
	if _, err := s.Store.GetHostByName(ctx, h.Name); err == nil {
		return nil, nameTaken()
	}
	if err := s.check(ctx, h); err != nil {
		return nil, err
	}
	if err := s.Store.CreateHost(ctx, h); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, nameTaken()
		}
		return nil, err
	}
	return h, nil
}

// Update changes the given settings of a host (empty ones are kept). A new admin URL or
// new credentials are checked against the host first: if it does not answer or refuses
// them, nothing is saved. Giving admin_api_key switches the host to an admin API key,
// admin_email with admin_password to a password login; admin_password alone replaces the
// password of a password login.
func (s *Service) Update(ctx context.Context, id string, in Settings) (*store.Host, error) {
	h, err := s.Store.GetHost(ctx, id)
	if err != nil {
		return nil, err
	}
	if in == (Settings{}) {
		return nil, request.Field("", "give at least one of name, admin_url, public_url, admin_api_key, admin_email, admin_password")
	}
	if err := s.apply(ctx, h, in); err != nil {
		return nil, err
	}
	if reachChanged(in) {
		if err := s.check(ctx, h); err != nil {
			return nil, err
		}
	}
	if err := s.Store.SaveHost(ctx, h); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, nameTaken()
		}
		return nil, err
	}
	return h, nil
}

// TestResult is the answer of a connection test: what the host said, nothing saved.
type TestResult struct {
	// OK: the host answered and accepted the credentials (status ok, or
	// compliance_required: reachable, but imports wait for an administrator).
	OK            bool      `json:"ok"`
	Status        string    `json:"status"`
	StatusMessage string    `json:"status_message,omitempty"`
	Version       string    `json:"version,omitempty"`
	Profile       string    `json:"profile,omitempty"`
	Warnings      []string  `json:"warnings"`
	LatencyMS     int64     `json:"latency_ms"`
	TestedAt      time.Time `json:"tested_at"`
	// Settings says which settings were tested: "stored" or "given" (stored, with the
	// request's changes applied).
	Settings string `json:"settings"`
}

// Test probes the host with its stored settings, or with in applied to them, and says
// what the host answered. It saves nothing: a test of new settings before Update.
func (s *Service) Test(ctx context.Context, id string, in Settings) (*TestResult, error) {
	h, err := s.Store.GetHost(ctx, id)
	if err != nil {
		return nil, err
	}
	res := &TestResult{Settings: "stored"}
	if in != (Settings{}) {
		res.Settings = "given"
		if err := s.apply(ctx, h, in); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	perr := s.Prober.ProbeHost(ctx, h)
	res.LatencyMS, res.TestedAt = time.Since(start).Milliseconds(), time.Now().UTC()
	if perr != nil {
		h.Status, h.StatusMessage = "unreachable", perr.Error()
	}
	res.Status, res.StatusMessage, res.Version, res.Profile, res.Warnings = h.Status, h.StatusMessage, h.Version, h.Profile, h.Warnings
	if res.Warnings == nil {
		res.Warnings = []string{}
	}
	res.OK = h.Status == "ok" || h.Status == "compliance_required"
	return res, nil
}

// Delete removes a host and what the database holds for it. While the ledger holds
// objects on the host it refuses (host_in_use) unless forget is set: the objects then stay
// on the host, unmanaged. It always refuses while items of the host are running
// (host_busy). The answer counts what was removed.
func (s *Service) Delete(ctx context.Context, id string, forget bool) (*store.Host, *store.HostUsage, error) {
	h, err := s.Store.GetHost(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	usage, err := s.Store.DeleteHost(ctx, id, forget)
	switch {
	case errors.Is(err, store.ErrHostBusy):
		return nil, usage, &Error{Kind: Conflict, Code: "host_busy", Usage: usage, Message: fmt.Sprintf(
			"%d items of host %s are still running; cancel their batches (or wait for them) before deleting the host", usage.RunningItems, h.Name)}
	case errors.Is(err, store.ErrHostInUse):
		return nil, usage, &Error{Kind: Conflict, Code: "host_in_use", Usage: usage, Message: fmt.Sprintf(
			"the ledger holds %s on host %s; roll back the batches that created them first, or delete with forget=true to "+
				"forget them: they stay on the host, and this product no longer knows, reconciles or rolls them back",
			DescribeLedger(usage), h.Name)}
	case err != nil:
		return nil, nil, err
	}
	return h, usage, nil
}

// DescribeLedger says what the ledger holds, e.g. "5 objects (1 group, 3 accounts, 1 key)".
func DescribeLedger(u *store.HostUsage) string {
	types := make([]string, 0, len(u.Ledger))
	for t := range u.Ledger {
		types = append(types, t)
	}
	sort.Slice(types, func(i, j int) bool { return typeOrder(types[i]) < typeOrder(types[j]) })
	parts := make([]string, 0, len(types))
	for _, t := range types {
		parts = append(parts, plural(u.Ledger[t], t))
	}
	return fmt.Sprintf("%s (%s)", plural(u.LedgerTotal, "object"), strings.Join(parts, ", "))
}

func typeOrder(t string) int {
	for i, x := range []string{store.TypeGroup, store.TypeAccount, store.TypeUser, store.TypeKey, store.TypeSubscription} {
		if x == t {
			return i
		}
	}
	return 99
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// apply checks the given settings and writes them into h (not saved).
func (s *Service) apply(ctx context.Context, h *store.Host, in Settings) error {
	if in.Name != "" {
		name := strings.TrimSpace(in.Name)
		if err := checkName(name); err != nil {
			return err
		}
		if name != h.Name {
			if other, err := s.Store.GetHostByName(ctx, name); err == nil && other.ID != h.ID {
				return nameTaken()
			}
		}
		h.Name = name
	}
	var err error
	if in.AdminURL != "" {
		if h.AdminURL, err = httpURL("admin_url", in.AdminURL); err != nil {
			return err
		}
	}
	if in.PublicURL != "" {
		if h.PublicURL, err = httpURL("public_url", in.PublicURL); err != nil {
			return err
		}
	}
	if in.AdminAPIKey == "" && in.AdminEmail == "" && in.AdminPassword != "" {
		if h.AuthKind != AuthPassword {
			return request.Field("admin_password", "this host logs in with an admin API key; give admin_email with admin_password to switch it to a password login")
		}
		in.AdminEmail = h.AdminEmail
	}
	if in.AdminAPIKey != "" || in.AdminEmail != "" {
		return s.setCredentials(h, in)
	}
	return nil
}

// setCredentials seals the given admin API key, or admin e-mail and password, into h.
func (s *Service) setCredentials(h *store.Host, in Settings) error {
	key := strings.TrimSpace(in.AdminAPIKey)
	switch {
	case key != "" && in.AdminEmail != "":
		return request.Field("admin_api_key", "give either admin_api_key or admin_email/admin_password, not both")
	case key != "":
		if len(key) > MaxKeyLen || strings.IndexFunc(key, isSpace) >= 0 || !utf8.ValidString(key) {
			return request.Field("admin_api_key", fmt.Sprintf("admin_api_key must be one token of at most %d characters", MaxKeyLen))
		}
		if r, bad := request.ControlChar(key, false); bad {
			return request.ControlError("admin_api_key", r)
		}
		sealed, err := s.Box.Seal(key)
		if err != nil {
			return err
		}
		h.AuthKind, h.AdminKeyEnc, h.AdminKeyMasked = AuthAPIKey, sealed, secret.Mask(key)
		h.AdminEmail, h.AdminPasswordEnc = "", ""
	default:
		email := strings.TrimSpace(in.AdminEmail)
		switch {
		case len(email) > MaxEmailLen:
			return request.Field("admin_email", fmt.Sprintf("admin_email is at most %d characters", MaxEmailLen))
		case !strings.Contains(email, "@"):
			return request.Field("admin_email", "admin_email must be an e-mail address")
		case in.AdminPassword == "":
			return request.Field("admin_password", "admin_password is required with admin_email")
		}
		if r, bad := request.ControlChar(email, false); bad {
			return request.ControlError("admin_email", r)
		}
		sealed, err := s.Box.Seal(in.AdminPassword)
		if err != nil {
			return err
		}
		h.AuthKind, h.AdminEmail, h.AdminPasswordEnc = AuthPassword, email, sealed
		h.AdminKeyEnc, h.AdminKeyMasked = "", ""
	}
	return nil
}

// check probes h (read-only) and refuses settings the host does not answer or accept; it
// leaves the probe's results (version, profile, status, warnings) in h.
func (s *Service) check(ctx context.Context, h *store.Host) error {
	if err := s.Prober.ProbeHost(ctx, h); err != nil {
		return &Error{Kind: HostRefused, Code: "host_unreachable", Field: "admin_url", Message: err.Error()}
	}
	switch h.Status {
	case "auth_failed":
		field := "admin_api_key"
		if h.AuthKind == AuthPassword {
			field = "admin_password"
		}
		return &Error{Kind: HostRefused, Code: "host_auth_failed", Field: field, Message: h.StatusMessage}
	case "unreachable":
		return &Error{Kind: HostRefused, Code: "host_unreachable", Field: "admin_url", Message: h.StatusMessage}
	}
	return nil
}

// reachChanged reports whether a change touches how the host is reached.
func reachChanged(in Settings) bool {
	return in.AdminURL != "" || in.AdminAPIKey != "" || in.AdminEmail != "" || in.AdminPassword != ""
}

func nameTaken() error {
	return &Error{Kind: Conflict, Code: "host_exists", Field: "name", Message: "a host with this name is already registered"}
}

func checkName(name string) error {
	switch {
	case name == "" || len(name) > MaxNameLen:
		return request.Field("name", fmt.Sprintf("name is required (at most %d characters)", MaxNameLen))
	case !utf8.ValidString(name):
		return request.Field("name", "name is not valid UTF-8")
	}
	if r, bad := request.ControlChar(name, false); bad {
		return request.ControlError("name", r)
	}
	return nil
}

// httpURL checks an http(s) URL without credentials and returns it without trailing slashes.
func httpURL(field, raw string) (string, error) {
	raw = strings.TrimRight(strings.TrimSpace(raw), "/")
	if r, bad := request.ControlChar(raw, false); bad {
		return "", request.ControlError(field, r)
	}
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return "", request.Field(field, field+" is required")
	case len(raw) > MaxURLLen:
		return "", request.Field(field, fmt.Sprintf("%s is at most %d characters", field, MaxURLLen))
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return "", request.Field(field, field+" must be an http(s) URL")
	case u.User != nil:
		return "", request.Field(field, field+" must not contain credentials")
	}
	return raw, nil
}

func isSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f'
}

// Probe probes the host with its stored settings and stores the answer (version,
// profile, status); a host that does not answer is stored as unreachable.
func (s *Service) Probe(ctx context.Context, id string) (*store.Host, error) {
	h, err := s.Store.GetHost(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := s.Prober.ProbeHost(ctx, h); err != nil {
		h.Status, h.StatusMessage = "unreachable", err.Error()
	}
	if err := s.Store.UpdateHost(ctx, h); err != nil {
		return nil, err
	}
	return h, nil
}
