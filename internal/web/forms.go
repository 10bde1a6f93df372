package web

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/cn-relay-manager/cn-relay-manager/internal/batch"
	"github.com/cn-relay-manager/cn-relay-manager/internal/batch/request"
	"github.com/cn-relay-manager/cn-relay-manager/internal/hostreg"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// maxUpload bounds an uploaded item file (the API's body limit).
const maxUpload = 32 << 20

// formErrors are a form's refusals by form field ("" = the form as a whole). Messages
// come from the services, which word them for operators (in English).
type formErrors map[string]string

func (e formErrors) Has(field string) bool { return e[field] != "" }
func (e formErrors) Get(field string) string {
	return e[field]
}

// ---- hosts: register, edit, test, delete ----

type hostForm struct {
	Host       *store.Host // nil when registering
	Post       string
	Name       string
	AdminURL   string
	PublicURL  string
	Auth       string // api_key or password
	AdminEmail string
	Errors     formErrors
	Test       *hostreg.TestResult
	Saved      bool
}

func (h *Handler) newHostForm(c *fiber.Ctx) error {
	return h.renderHostForm(c, fiber.StatusOK, &hostForm{Post: "/hosts/new", Auth: hostreg.AuthAPIKey})
}

func (h *Handler) renderHostForm(c *fiber.Ctx, status int, f *hostForm) error {
	if f.Errors == nil {
		f.Errors = formErrors{}
	}
	title := "hostform.newtitle"
	if f.Host != nil {
		title = "hostform.edittitle"
	}
	return h.render(c, status, "hostform", title, f)
}

// hostSettings reads the host form. Secret fields are read, never rendered back.
func hostSettings(c *fiber.Ctx) (hostreg.Settings, *hostForm) {
	f := &hostForm{Name: strings.Clone(c.FormValue("name")), AdminURL: strings.Clone(c.FormValue("admin_url")),
		PublicURL: strings.Clone(c.FormValue("public_url")), Auth: strings.Clone(c.FormValue("auth")),
		AdminEmail: strings.Clone(c.FormValue("admin_email")), Errors: formErrors{}}
	in := hostreg.Settings{Name: f.Name, AdminURL: f.AdminURL, PublicURL: f.PublicURL}
	if f.Auth == hostreg.AuthPassword {
		in.AdminEmail, in.AdminPassword = f.AdminEmail, strings.Clone(c.FormValue("admin_password"))
	} else {
		f.Auth = hostreg.AuthAPIKey
		in.AdminAPIKey = strings.Clone(c.FormValue("admin_api_key"))
	}
	return in, f
}

// hostRefusal puts a refusal of the host service beside its field, or returns err when it
// is not one (an internal error).
func hostRefusal(err error, f *hostForm) (int, error) {
	var fe *batch.FieldError
	var he *hostreg.Error
	switch {
	case errors.As(err, &fe):
		f.Errors[fe.Field] = fe.Message
		return fiber.StatusBadRequest, nil
	case errors.As(err, &he):
		f.Errors[he.Field] = he.Message
		if he.Kind == hostreg.HostRefused {
			return fiber.StatusUnprocessableEntity, nil
		}
		return fiber.StatusConflict, nil
	case errors.Is(err, store.ErrNotFound):
		return fiber.StatusNotFound, err
	}
	return 0, err
}

func (h *Handler) registerHost(c *fiber.Ctx) error {
	in, f := hostSettings(c)
	f.Post = "/hosts/new"
	if h.Hosts == nil {
		return h.renderError(c, fiber.StatusServiceUnavailable, "err.action", "hosts are not configured")
	}
	ho, err := h.Hosts.Register(c.UserContext(), in)
	if err != nil {
		status, ierr := hostRefusal(err, f)
		if ierr != nil {
			return ierr
		}
		return h.renderHostForm(c, status, f)
	}
	h.Log.Info("web: host registered", "host_id", ho.ID, "ip", c.IP())
	return c.Redirect("/hosts/"+ho.ID+"?done=registered", fiber.StatusSeeOther)
}

func (h *Handler) editHostForm(c *fiber.Ctx) error {
	ho, err := h.Store.GetHost(c.UserContext(), strings.Clone(c.Params("id")))
	if err != nil {
		return h.notFoundOr(c, err)
	}
	return h.renderHostForm(c, fiber.StatusOK, &hostForm{Host: ho, Post: "/hosts/" + ho.ID + "/edit", Name: ho.Name,
		AdminURL: ho.AdminURL, PublicURL: ho.PublicURL, Auth: ho.AuthKind, AdminEmail: ho.AdminEmail})
}

// editHost saves the changed settings (op=save) or tests them without saving (op=test).
// Only what differs from the stored host is sent: an empty secret field keeps the secret.
func (h *Handler) editHost(c *fiber.Ctx) error {
	ctx := c.UserContext()
	ho, err := h.Store.GetHost(ctx, strings.Clone(c.Params("id")))
	if err != nil {
		return h.notFoundOr(c, err)
	}
	in, f := hostSettings(c)
	f.Host, f.Post = ho, "/hosts/"+ho.ID+"/edit"
	change := hostreg.Settings{AdminAPIKey: in.AdminAPIKey, AdminPassword: in.AdminPassword}
	if strings.TrimSpace(in.Name) != ho.Name {
		change.Name = in.Name
		if strings.TrimSpace(in.Name) == "" {
			change.Name = " " // an emptied name is refused by the service, not ignored
		}
	}
	if strings.TrimRight(strings.TrimSpace(in.AdminURL), "/") != ho.AdminURL {
		change.AdminURL = in.AdminURL
	}
	if strings.TrimRight(strings.TrimSpace(in.PublicURL), "/") != ho.PublicURL {
		change.PublicURL = in.PublicURL
	}
	if f.Auth == hostreg.AuthPassword && (ho.AuthKind != hostreg.AuthPassword || strings.TrimSpace(in.AdminEmail) != ho.AdminEmail) {
		change.AdminEmail = in.AdminEmail
	}
	if h.Hosts == nil {
		return h.renderError(c, fiber.StatusServiceUnavailable, "err.action", "hosts are not configured")
	}
	if c.FormValue("op") == "test" {
		res, err := h.Hosts.Test(ctx, ho.ID, change)
		if err != nil {
			status, ierr := hostRefusal(err, f)
			if ierr != nil {
				return ierr
			}
			return h.renderHostForm(c, status, f)
		}
		f.Test = res
		return h.renderHostForm(c, fiber.StatusOK, f)
	}
	if change == (hostreg.Settings{}) {
		return c.Redirect("/hosts/"+ho.ID+"?done=unchanged", fiber.StatusSeeOther)
	}
	if _, err := h.Hosts.Update(ctx, ho.ID, change); err != nil {
		status, ierr := hostRefusal(err, f)
		if ierr != nil {
			return ierr
		}
		return h.renderHostForm(c, status, f)
	}
	h.Log.Info("web: host updated", "host_id", ho.ID, "ip", c.IP())
	return c.Redirect("/hosts/"+ho.ID+"?done=updated", fiber.StatusSeeOther)
}

// testHost tests the connection with the stored settings and shows the host page with
// the answer; nothing is saved.
func (h *Handler) testHost(c *fiber.Ctx) error {
	id := strings.Clone(c.Params("id"))
	if h.Hosts == nil {
		return h.renderError(c, fiber.StatusServiceUnavailable, "err.action", "hosts are not configured")
	}
	res, err := h.Hosts.Test(c.UserContext(), id, hostreg.Settings{})
	if err != nil {
		return h.notFoundOr(c, err)
	}
	return h.renderHost(c, id, res)
}

type hostDeleteData struct {
	Host  *store.Host
	Usage *store.HostUsage
	Types []count // ledger objects by type
}

func (h *Handler) confirmDeleteHost(c *fiber.Ctx) error {
	ctx := c.UserContext()
	ho, err := h.Store.GetHost(ctx, strings.Clone(c.Params("id")))
	if err != nil {
		return h.notFoundOr(c, err)
	}
	u, err := h.Store.HostUsage(ctx, ho.ID)
	if err != nil {
		return err
	}
	d := hostDeleteData{Host: ho, Usage: u}
	for _, t := range []string{store.TypeGroup, store.TypeAccount, store.TypeUser, store.TypeKey, store.TypeSubscription} {
		if u.Ledger[t] > 0 {
			d.Types = append(d.Types, count{t, u.Ledger[t]})
		}
	}
	return h.render(c, fiber.StatusOK, "hostdelete", "hostdelete.title", d)
}

func (h *Handler) deleteHost(c *fiber.Ctx) error {
	id := strings.Clone(c.Params("id"))
	if c.FormValue("confirm") != "yes" {
		return c.Redirect("/hosts/"+id+"/delete", fiber.StatusSeeOther)
	}
	if h.Hosts == nil {
		return h.renderError(c, fiber.StatusServiceUnavailable, "err.action", "hosts are not configured")
	}
	ho, u, err := h.Hosts.Delete(c.UserContext(), id, c.FormValue("forget") == "yes")
	if err != nil {
		var he *hostreg.Error
		if errors.As(err, &he) {
			return h.renderError(c, fiber.StatusConflict, "err.hostdelete", he.Message)
		}
		return h.notFoundOr(c, err)
	}
	h.Log.Info("web: host deleted", "host_id", id, "forgotten_ledger_rows", u.LedgerTotal, "ip", c.IP())
	q := url.Values{"done": {"deleted"}, "name": {ho.Name}, "ledger": {strconv.Itoa(u.LedgerTotal)}, "batches": {strconv.Itoa(u.Batches)}}
	return c.Redirect("/hosts?"+q.Encode(), fiber.StatusSeeOther)
}

// ---- batches: import from the pages ----

// batchForm is the import form: items pasted or uploaded (CSV, JSONL or `url key
// [models…]` lines, read by the same parser as crmctl), the host, the access mode, the
// target group and the confirmation window. Keys are never rendered back into the page.
type batchForm struct {
	Hosts       []store.Host
	HostID      string
	Name        string
	Mode        string
	Group       string
	GroupName   string
	GroupPrefix string
	Deadline    string
	Schedule    string
	Format      string
	Errors      formErrors
}

func (h *Handler) newBatchForm(c *fiber.Ctx) error {
	f := &batchForm{HostID: strings.Clone(c.Query("host")), Mode: request.ModeSelfService, Group: request.GroupPerProvider, Format: request.FormatAuto}
	return h.renderBatchForm(c, fiber.StatusOK, f)
}

func (h *Handler) renderBatchForm(c *fiber.Ctx, status int, f *batchForm) error {
	hosts, err := h.Store.ListHosts(c.UserContext())
	if err != nil {
		return err
	}
	f.Hosts = hosts
	if f.HostID == "" && len(hosts) == 1 {
		f.HostID = hosts[0].ID
	}
	if f.Errors == nil {
		f.Errors = formErrors{}
	}
	return h.render(c, status, "batchform", "batchform.title", f)
}

var itemField = regexp.MustCompile(`^items\[(\d+)\]`)

// submitBatch reads the items and settings, and submits through the batch service:
// op=preview as a dry run (its page shows the plan per group and per item, and offers
// "import for real"), op=import for real.
func (h *Handler) submitBatch(c *fiber.Ctx) error {
	f := &batchForm{HostID: strings.Clone(c.FormValue("host_id")), Name: strings.Clone(c.FormValue("name")),
		Mode: strings.Clone(c.FormValue("mode")), Group: strings.Clone(c.FormValue("group")),
		GroupName: strings.Clone(c.FormValue("group_name")), GroupPrefix: strings.Clone(c.FormValue("group_prefix")),
		Deadline: strings.Clone(c.FormValue("deadline")), Schedule: strings.Clone(c.FormValue("schedule")),
		Format: strings.Clone(c.FormValue("format")), Errors: formErrors{}}
	if h.Actions == nil {
		return h.renderError(c, fiber.StatusServiceUnavailable, "err.action", "actions are not configured")
	}
	text, err := itemsText(c)
	if err != nil {
		f.Errors["items"] = err.Error()
		return h.renderBatchForm(c, fiber.StatusBadRequest, f)
	}
	req := batch.Request{HostID: f.HostID, Name: f.Name, Mode: f.Mode, DryRun: c.FormValue("op") != "import"}
	if req.TargetGroup, err = formTargetGroup(f); err != nil {
		f.Errors["group"] = err.Error()
	}
	if req.Window, err = formWindow(f); err != nil {
		f.Errors["window"] = err.Error()
	}
	items, _, perr := request.ParseItems(strings.NewReader(text), f.Format)
	if perr != nil {
		f.Errors["items"] = perr.Error()
	}
	if len(f.Errors) > 0 {
		return h.renderBatchForm(c, fiber.StatusBadRequest, f)
	}
	req.Items = request.Items(items)
	sub, err := h.Actions.Submit(c.UserContext(), req)
	var fe *batch.FieldError
	if errors.As(err, &fe) {
		field, msg := fe.Field, fe.Message
		if m := itemField.FindStringSubmatch(field); m != nil {
			if i, _ := strconv.Atoi(m[1]); i < len(items) {
				msg = fmt.Sprintf("line %d: %s", items[i].Line, msg)
			}
		}
		f.Errors[formField(field)] = msg
		return h.renderBatchForm(c, fiber.StatusBadRequest, f)
	}
	if err != nil {
		return err
	}
	done := "submitted"
	if req.DryRun {
		done = "preview"
	}
	h.Log.Info("web: batch submitted", "batch_id", sub.Batch.ID, "items", len(sub.Items), "dry_run", req.DryRun, "ip", c.IP())
	return c.Redirect("/batches/"+sub.Batch.ID+"?done="+done, fiber.StatusSeeOther)
}

// formField is the form field a refused request field belongs to.
func formField(field string) string {
	switch {
	case field == "host_id", field == "name", field == "mode":
		return field
	case strings.HasPrefix(field, "items"):
		return "items"
	case strings.HasPrefix(field, "target_group"):
		return "group"
	case strings.HasPrefix(field, "window"):
		return "window"
	}
	return ""
}

// itemsText is the uploaded file when one was chosen, else the pasted text.
func itemsText(c *fiber.Ctx) (string, error) {
	fh, err := c.FormFile("file")
	if err == nil && fh != nil && fh.Size > 0 {
		if fh.Size > maxUpload {
			return "", fmt.Errorf("the file is larger than %d MiB", maxUpload>>20)
		}
		rd, err := fh.Open()
		if err != nil {
			return "", fmt.Errorf("read the uploaded file: %v", err)
		}
		defer rd.Close()
		var b bytes.Buffer
		if _, err := io.Copy(&b, io.LimitReader(rd, maxUpload)); err != nil {
			return "", fmt.Errorf("read the uploaded file: %v", err)
		}
		return b.String(), nil
	}
	return strings.Clone(c.FormValue("items")), nil
}

// formTargetGroup reads the target group fields; a name or prefix belonging to another
// mode than the chosen one is ignored.
func formTargetGroup(f *batchForm) (*request.TargetGroup, error) {
	switch f.Group {
	case "", request.GroupPerProvider:
		return &request.TargetGroup{Mode: request.GroupPerProvider, Prefix: strings.TrimSpace(f.GroupPrefix)}, nil
	case request.GroupPerItem:
		return &request.TargetGroup{Mode: request.GroupPerItem}, nil
	case request.GroupExisting:
		name := strings.TrimSpace(f.GroupName)
		if id, err := strconv.ParseInt(strings.TrimPrefix(name, "#"), 10, 64); err == nil && id > 0 {
			return &request.TargetGroup{Mode: request.GroupExisting, ID: id}, nil
		}
		return &request.TargetGroup{Mode: request.GroupExisting, Name: name}, nil
	}
	return nil, fmt.Errorf("unknown target group mode %q", f.Group)
}

// formWindow reads the confirmation window: a deadline ("5m", "300s" or seconds) and a
// schedule of delays separated by commas; both empty keeps the process defaults.
func formWindow(f *batchForm) (*request.Window, error) {
	if strings.TrimSpace(f.Deadline) == "" && strings.TrimSpace(f.Schedule) == "" {
		return nil, nil
	}
	w := &request.Window{}
	if s := strings.TrimSpace(f.Deadline); s != "" {
		d, err := seconds(s)
		if err != nil {
			return nil, fmt.Errorf("deadline %q: %v", s, err)
		}
		w.DeadlineS = d
	}
	for _, part := range strings.Split(f.Schedule, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		d, err := seconds(part)
		if err != nil {
			return nil, fmt.Errorf("schedule %q: %v", part, err)
		}
		w.ScheduleS = append(w.ScheduleS, d)
	}
	return w, nil
}

// seconds reads "90", "90s", "5m" or "1h30m" as seconds.
func seconds(s string) (float64, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("use seconds or a duration such as 90s or 5m")
	}
	return d.Seconds(), nil
}
