package web

import (
	"context"
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/cn-relay-manager/cn-relay-manager/internal/accounts"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// AccountActions are the operations of the accounts page; implemented by the accounts
// service (internal/accounts), the same one the REST API calls.
type AccountActions interface {
	RunNow(ctx context.Context, hostID string, spread time.Duration) (*store.VerifyRun, error)
	Undo(ctx context.Context, checkID string) (*store.AccountCheck, error)
	PutSettings(ctx context.Context, hostID string, req accounts.SettingsRequest) (*accounts.Settings, error)
	AddWebhook(ctx context.Context, hostID string, req accounts.WebhookRequest) (*store.Webhook, error)
	DeleteWebhook(ctx context.Context, id string) error
	TestWebhook(ctx context.Context, id, eventType string) (*accounts.TestResult, error)
}

const accountPageSize = 100

// mountAccounts registers the accounts pages of a host and their forms.
func (h *Handler) mountAccounts(app *fiber.App) {
	app.Get("/hosts/:id/accounts", h.auth, h.accountsPage)
	app.Get("/hosts/:id/accounts/:item", h.auth, h.accountPage)
	app.Post("/hosts/:id/accounts/verify", h.csrf, h.accountsVerify)
	app.Post("/hosts/:id/accounts/settings", h.csrf, h.accountsSettings)
	app.Post("/hosts/:id/webhooks", h.csrf, h.webhookAdd)
	app.Post("/hosts/:id/webhooks/:hook/test", h.csrf, h.webhookTest)
	app.Get("/hosts/:id/webhooks/:hook/delete", h.auth, h.webhookConfirmDelete)
	app.Post("/hosts/:id/webhooks/:hook/delete", h.csrf, h.webhookDelete)
	app.Get("/hosts/:id/checks/:check/undo", h.auth, h.undoConfirm)
	app.Post("/hosts/:id/checks/:check/undo", h.csrf, h.undoCheck)
}

type accountsData struct {
	Host     *store.Host
	Accounts []store.AccountHealth
	Counts   map[string]int
	Status   string
	Pager    pager
	Runs     []store.VerifyRun
	Settings *store.HostSettings
	Webhooks []store.Webhook
	Events   []string
	Statuses []string
	Done     string
}

func (h *Handler) accountsPage(c *fiber.Ctx) error {
	ctx := c.UserContext()
	ho, err := h.Store.GetHost(ctx, strings.Clone(c.Params("id")))
	if err != nil {
		return h.notFoundOr(c, err)
	}
	d := accountsData{Host: ho, Status: strings.Clone(c.Query("status")), Events: []string{"batch_finished", "account_failing", "balance_low", "recovery_done"},
		Statuses: []string{store.HealthFailing, store.HealthDegraded, store.HealthHealthy},
		Done:     accountsDone(c.Query("done"))}
	if d.Status != "" && d.Status != store.HealthHealthy && d.Status != store.HealthDegraded && d.Status != store.HealthFailing {
		d.Status = ""
	}
	page := pageParam(c)
	var total int
	if d.Accounts, total, err = h.Store.ListAccountHealth(ctx, store.HealthFilter{HostID: ho.ID, Status: d.Status,
		Limit: accountPageSize, Offset: (page - 1) * accountPageSize}); err != nil {
		return err
	}
	d.Pager = newPager(page, accountPageSize, total)
	counts, err := h.Store.AccountHealthCounts(ctx)
	if err != nil {
		return err
	}
	d.Counts = counts[ho.ID]
	if d.Runs, err = h.Store.ListVerifyRuns(ctx, ho.ID, 10); err != nil {
		return err
	}
	if d.Settings, err = h.Store.GetHostSettings(ctx, ho.ID); err != nil {
		return err
	}
	if d.Webhooks, err = h.Store.ListWebhooks(ctx, ho.ID); err != nil {
		return err
	}
	v := &view{Title: "accounts.title", Data: d}
	for _, r := range d.Runs {
		if r.Status == store.VerifyRunning {
			v.Refresh = refreshSecs * 2 // follow a run in progress
		}
	}
	return h.renderView(c, fiber.StatusOK, "accounts", v)
}

// accountsDone keeps the flash messages the accounts page knows.
func accountsDone(done string) string {
	switch done {
	case "verify", "settings", "webhook", "webhooktest", "webhookdelete", "undo":
		return done
	}
	return ""
}

type accountData struct {
	Host    *store.Host
	Account *store.AccountHealth
	Checks  []store.AccountCheck
	// Undoable is the check whose host change can be undone now ("" = none).
	Undoable string
	Done     string
}

func (h *Handler) accountPage(c *fiber.Ctx) error {
	ctx := c.UserContext()
	ho, err := h.Store.GetHost(ctx, strings.Clone(c.Params("id")))
	if err != nil {
		return h.notFoundOr(c, err)
	}
	acct, err := h.Store.GetAccountHealth(ctx, strings.Clone(c.Params("item")))
	if err != nil || acct.HostID != ho.ID {
		return h.renderError(c, fiber.StatusNotFound, "err.notfound", "")
	}
	d := accountData{Host: ho, Account: acct, Done: accountsDone(c.Query("done"))}
	if d.Checks, err = h.Store.AccountHistory(ctx, acct.ItemID, 50); err != nil {
		return err
	}
	for _, ch := range d.Checks {
		if ch.ActionDetail.Undo != "" {
			if ch.UndoState == "" {
				d.Undoable = ch.ID
			}
			break
		}
	}
	return h.render(c, fiber.StatusOK, "account", "account.title", d)
}

func (h *Handler) accountsBack(c *fiber.Ctx, hostID, done string) error {
	return c.Redirect("/hosts/"+hostID+"/accounts?done="+done, fiber.StatusSeeOther)
}

func (h *Handler) hostOr404(c *fiber.Ctx) (string, error) {
	id := strings.Clone(c.Params("id"))
	if _, err := h.Store.GetHost(c.UserContext(), id); err != nil {
		return "", h.notFoundOr(c, err)
	}
	if h.Accounts == nil {
		return "", h.renderError(c, fiber.StatusServiceUnavailable, "err.action", "actions are not configured")
	}
	return id, nil
}

func (h *Handler) accountsVerify(c *fiber.Ctx) error {
	id, err := h.hostOr404(c)
	if id == "" {
		return err
	}
	if _, err := h.Accounts.RunNow(c.UserContext(), id, 0); err != nil {
		return h.actionFailed(c, "verify", id, err)
	}
	h.Log.Info("web: re-verification asked for", "host_id", id, "ip", c.IP())
	return h.accountsBack(c, id, "verify")
}

func (h *Handler) accountsSettings(c *fiber.Ctx) error {
	id, err := h.hostOr404(c)
	if id == "" {
		return err
	}
	auto, park := c.FormValue("auto_recover") == "on", c.FormValue("park_failing") == "on"
	req := accounts.SettingsRequest{AutoRecover: &auto, ParkFailing: &park}
	if v := strings.TrimSpace(c.FormValue("low_balance")); v != "" {
		f, perr := strconv.ParseFloat(v, 64)
		if perr != nil {
			return h.actionFailed(c, "settings", id, fmt.Errorf("low balance %q is not a number", v))
		}
		req.LowBalance = &f
	}
	if _, err := h.Accounts.PutSettings(c.UserContext(), id, req); err != nil {
		return h.actionFailed(c, "settings", id, err)
	}
	h.Log.Info("web: account settings changed", "host_id", id, "auto_recover", auto, "park_failing", park, "ip", c.IP())
	return h.accountsBack(c, id, "settings")
}

func (h *Handler) webhookAdd(c *fiber.Ctx) error {
	id, err := h.hostOr404(c)
	if id == "" {
		return err
	}
	req := accounts.WebhookRequest{Name: c.FormValue("name"), Format: c.FormValue("format"), URL: c.FormValue("url"),
		Secret: c.FormValue("secret"), Lang: c.FormValue("lang")}
	for _, e := range []string{"batch_finished", "account_failing", "balance_low", "recovery_done"} {
		if c.FormValue("event_"+e) == "on" {
			req.Events = append(req.Events, e)
		}
	}
	w, err := h.Accounts.AddWebhook(c.UserContext(), id, req)
	if err != nil {
		return h.actionFailed(c, "webhook", id, err)
	}
	h.Log.Info("web: webhook added", "host_id", id, "webhook_id", w.ID, "format", w.Format, "url", w.URLShown, "ip", c.IP())
	return h.accountsBack(c, id, "webhook")
}

// webhookOf loads a webhook of the host in the URL.
func (h *Handler) webhookOf(c *fiber.Ctx, hostID string) (*store.Webhook, error) {
	w, err := h.Store.GetWebhook(c.UserContext(), strings.Clone(c.Params("hook")))
	if err != nil {
		return nil, err
	}
	if w.HostID != hostID {
		return nil, fmt.Errorf("webhook of another host: %w", store.ErrNotFound)
	}
	return w, nil
}

func (h *Handler) webhookTest(c *fiber.Ctx) error {
	id, err := h.hostOr404(c)
	if id == "" {
		return err
	}
	w, err := h.webhookOf(c, id)
	if err != nil {
		return h.notFoundOr(c, err)
	}
	res, err := h.Accounts.TestWebhook(c.UserContext(), w.ID, c.FormValue("event"))
	if err != nil {
		return h.actionFailed(c, "webhooktest", id, err)
	}
	if !res.Delivered {
		return h.renderError(c, fiber.StatusBadGateway, "err.webhooktest", res.Error)
	}
	return h.accountsBack(c, id, "webhooktest")
}

func (h *Handler) webhookConfirmDelete(c *fiber.Ctx) error {
	id := strings.Clone(c.Params("id"))
	w, err := h.webhookOf(c, id)
	if err != nil {
		return h.notFoundOr(c, err)
	}
	return h.render(c, fiber.StatusOK, "confirm", "confirm.title", confirmData{
		Action: "webhookdelete", Target: w.Format + " " + w.URLShown, Post: "/hosts/" + id + "/webhooks/" + w.ID + "/delete",
		Back: "/hosts/" + id + "/accounts"})
}

func (h *Handler) webhookDelete(c *fiber.Ctx) error {
	id, err := h.hostOr404(c)
	if id == "" {
		return err
	}
	w, err := h.webhookOf(c, id)
	if err != nil {
		return h.notFoundOr(c, err)
	}
	if c.FormValue("confirm") != "yes" {
		return c.Redirect("/hosts/"+id+"/webhooks/"+w.ID+"/delete", fiber.StatusSeeOther)
	}
	if err := h.Accounts.DeleteWebhook(c.UserContext(), w.ID); err != nil {
		return h.actionFailed(c, "webhookdelete", id, err)
	}
	h.Log.Info("web: webhook deleted", "host_id", id, "webhook_id", w.ID, "ip", c.IP())
	return h.accountsBack(c, id, "webhookdelete")
}

// checkOf loads a check of the host in the URL.
func (h *Handler) checkOf(c *fiber.Ctx, hostID string) (*store.AccountCheck, error) {
	ch, err := h.Store.GetAccountCheck(c.UserContext(), strings.Clone(c.Params("check")))
	if err != nil {
		return nil, err
	}
	if ch.HostID != hostID {
		return nil, fmt.Errorf("check of another host: %w", store.ErrNotFound)
	}
	return ch, nil
}

func (h *Handler) undoConfirm(c *fiber.Ctx) error {
	id := strings.Clone(c.Params("id"))
	ch, err := h.checkOf(c, id)
	if err != nil {
		return h.notFoundOr(c, err)
	}
	return h.render(c, fiber.StatusOK, "confirm", "confirm.title", confirmData{
		Action: "undo." + ch.Action, Target: ch.AccountName, Post: "/hosts/" + id + "/checks/" + ch.ID + "/undo",
		Back: "/hosts/" + id + "/accounts/" + ch.ItemID})
}

func (h *Handler) undoCheck(c *fiber.Ctx) error {
	id, err := h.hostOr404(c)
	if id == "" {
		return err
	}
	ch, err := h.checkOf(c, id)
	if err != nil {
		return h.notFoundOr(c, err)
	}
	if c.FormValue("confirm") != "yes" {
		return c.Redirect("/hosts/"+id+"/checks/"+ch.ID+"/undo", fiber.StatusSeeOther)
	}
	if _, err := h.Accounts.Undo(c.UserContext(), ch.ID); err != nil {
		return h.actionFailed(c, "undo", ch.ID, err)
	}
	h.Log.Info("web: undo asked for", "host_id", id, "check_id", ch.ID, "ip", c.IP())
	return c.Redirect("/hosts/"+id+"/accounts/"+ch.ItemID+"?done=undo", fiber.StatusSeeOther)
}

// Spark renders the recent statuses (h, d, f, oldest first) as an inline SVG bar chart:
// low green bars for healthy, middle amber for degraded, full red for failing.
func (v *view) Spark(recent string) template.HTML {
	if recent == "" {
		return template.HTML(`<span class="muted">–</span>`)
	}
	const w, gap, hgt = 4, 1, 16
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="spark" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">`,
		len(recent)*(w+gap), hgt, len(recent)*(w+gap), hgt, template.HTMLEscapeString(v.T("accounts.history")))
	for i, r := range recent {
		bar, fill := 5, "#127a3a"
		switch r {
		case 'd':
			bar, fill = 10, "#9a6700"
		case 'f':
			bar, fill = hgt, "#b42318"
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"></rect>`, i*(w+gap), hgt-bar, w, bar, fill)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// Health renders an account health badge (the colours of the item states: healthy as
// ready, degraded as a warning, failing as failed).
func (v *view) Health(s string) template.HTML {
	class := map[string]string{store.HealthHealthy: "s-ok", store.HealthDegraded: "o-advisory", store.HealthFailing: "s-failed"}[s]
	return badge(class, v.T("health."+s))
}

// Money renders a balance reading.
func (v *view) Money(amount *float64, currency string) string {
	if amount == nil {
		return "–"
	}
	return strconv.FormatFloat(*amount, 'f', 2, 64) + " " + currency
}
