package pipeline

import (
	"context"
	"fmt"
	"strings"

	"github.com/cn-relay-manager/cn-relay-manager/internal/host"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// Host statuses shown to operators.
const (
	HostOK                 = "ok"
	HostComplianceRequired = "compliance_required"
	HostAuthFailed         = "auth_failed"
	HostLoginBlocked       = "login_blocked"
	HostUnreachable        = "unreachable"
	// HostKeyMismatch: the host's stored admin credentials cannot be opened with this
	// process's CRM_MASTER_KEY (another master key sealed them).
	HostKeyMismatch = "master_key_mismatch"
)

// ProbeHost reads the host's version, profile and blocking settings without side effects
// and fills h. It returns an error only when the host cannot be reached at all; an
// authentication failure or a compliance lock is a status, with an actionable message.
func (e *Engine) ProbeHost(ctx context.Context, h *store.Host) error {
	cfg, err := HostConfig(e.Box, h)
	if res, ok := unreadable(err); ok {
		h.Status, h.StatusMessage = HostKeyMismatch, res.message
		return nil
	}
	if err != nil {
		return err
	}
	var c interface {
		Detect(ctx context.Context) (string, host.Profile, string, error)
	} = host.New(cfg)
	if e.NewHostClient != nil {
		if d, ok := e.NewHostClient(h, cfg).(interface {
			Detect(ctx context.Context) (string, host.Profile, string, error)
		}); ok {
			c = d
		}
	}
	version, prof, warning, err := c.Detect(ctx)
	now := e.now()
	h.ProbedAt = &now
	h.Warnings = []string{}
	if warning != "" {
		h.Warnings = strings.Split(warning, "; ")
	}
	if err != nil {
		he, ok := host.AsError(err)
		switch {
		case host.IsUnauthorized(err):
			h.Status, h.StatusMessage = HostAuthFailed, fmt.Sprintf("the host refused the admin credentials (%s)", he.Code)
			return nil
		case host.IsCode(err, host.CodeRequires2FA):
			h.Status, h.StatusMessage = HostLoginBlocked, "admin login requires 2FA; register the host with an admin API key instead"
			return nil
		case ok && he.Status > 0:
			h.Status, h.StatusMessage = HostUnreachable, he.Error()
			return nil
		}
		return fmt.Errorf("probe host %s: %w", h.AdminURL, err)
	}
	h.Version, h.Profile = version, prof.Name
	h.Status, h.StatusMessage = HostOK, ""
	for _, w := range h.Warnings {
		if strings.HasPrefix(w, "compliance acknowledgement required") {
			h.Status = HostComplianceRequired
			h.StatusMessage = w + ": an administrator must read and accept the host's compliance notice in its admin UI; imports pause until then"
		}
	}
	h.Flags = map[string]bool{"compliance_gate": prof.ComplianceGate, "account_test_trusted": prof.AccountTestTrustedChatOnly}
	for _, w := range h.Warnings {
		// A captcha or backend mode makes end-user logins impossible, so keys for the
		// managed user cannot be created: only access mode "none" can work.
		if strings.HasPrefix(w, "login captcha enabled") || strings.HasPrefix(w, "backend mode enabled") {
			h.Flags["end_user_login_blocked"] = true
		}
	}
	return nil
}
