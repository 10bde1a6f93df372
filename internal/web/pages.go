package web

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/cn-relay-manager/cn-relay-manager/internal/hostreg"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

const (
	batchPageSize = 25
	itemPageSize  = 100
	refreshSecs   = 3
)

// batchActions are the POST /batches/:id/<action> routes.
var batchActions = []string{"retry", "cancel", "rollback", "reconcile", "import"}

// destructive actions need an explicit confirmation (confirm=yes from the confirm page).
var destructive = map[string]bool{"cancel": true, "rollback": true, "import": true}

var batchStatuses = []string{store.BatchQueued, store.BatchRunning, store.BatchSucceeded, store.BatchPartiallySucceeded,
	store.BatchFailed, store.BatchCancelled, store.BatchRolledBack}

// itemStatusOrder orders per-status counts the way the pipeline runs.
var itemStatusOrder = []string{store.ItemSubmitted, store.ItemProbing, store.ItemImporting, store.ItemConfirming,
	store.ItemClosingAccess, store.ItemVerifying, store.ItemReady, store.ItemReadyWithWarnings, store.ItemFailed,
	store.ItemSkipped, store.ItemCancelled, store.ItemRolledBack}

type count struct {
	Status string
	N      int
}

func orderedCounts(m map[string]int) []count {
	var out []count
	seen := map[string]bool{}
	for _, s := range itemStatusOrder {
		if m[s] > 0 {
			out = append(out, count{s, m[s]})
		}
		seen[s] = true
	}
	var rest []string
	for s := range m {
		if !seen[s] && m[s] > 0 {
			rest = append(rest, s)
		}
	}
	sort.Strings(rest)
	for _, s := range rest {
		out = append(out, count{s, m[s]})
	}
	return out
}

func running(status string) bool { return status == store.BatchQueued || status == store.BatchRunning }

type pager struct {
	Page, Pages, Total int
}

func (p pager) HasPrev() bool { return p.Page > 1 }
func (p pager) HasNext() bool { return p.Page < p.Pages }
func (p pager) Prev() int     { return p.Page - 1 }
func (p pager) Next() int     { return p.Page + 1 }

func newPager(page, size, total int) pager {
	pages := (total + size - 1) / size
	if pages < 1 {
		pages = 1
	}
	return pager{Page: page, Pages: pages, Total: total}
}

func pageParam(c *fiber.Ctx) int {
	p := c.QueryInt("page", 1)
	if p < 1 {
		p = 1
	}
	if p > 1_000_000 {
		p = 1_000_000
	}
	return p
}

// ---- batch list ----

type batchRow struct {
	store.Batch
	HostName string
	Counts   []count
}

type batchListData struct {
	Batches  []batchRow
	Hosts    []store.Host
	Host     string
	Status   string
	Statuses []string
	Pager    pager
}

func (h *Handler) listBatches(c *fiber.Ctx) error {
	ctx := c.UserContext()
	hostID, status := strings.Clone(c.Query("host")), strings.Clone(c.Query("status"))
	page := pageParam(c)
	list, total, err := h.Store.ListBatches(ctx, store.BatchFilter{HostID: hostID, Status: status, Limit: batchPageSize, Offset: (page - 1) * batchPageSize})
	if err != nil {
		return err
	}
	hosts, err := h.Store.ListHosts(ctx)
	if err != nil {
		return err
	}
	names := map[string]string{}
	for _, ho := range hosts {
		names[ho.ID] = ho.Name
	}
	d := batchListData{Hosts: hosts, Host: hostID, Status: status, Statuses: batchStatuses, Pager: newPager(page, batchPageSize, total)}
	refresh := 0
	for _, b := range list {
		counts, err := h.Store.StatusCounts(ctx, b.ID)
		if err != nil {
			return err
		}
		d.Batches = append(d.Batches, batchRow{Batch: b, HostName: names[b.HostID], Counts: orderedCounts(counts)})
		if running(b.Status) {
			refresh = 5
		}
	}
	return h.renderView(c, fiber.StatusOK, "batches", &view{Title: "batches.title", Data: d, Refresh: refresh})
}

// ---- batch detail ----

type capBadge struct {
	Key string
	On  bool
}

// capView is an item's capability profile: what was tested (supported or not) and what
// never was (the chat failed first, or the provider offers no such endpoint): "not
// tested", never shown as unsupported.
type capView struct {
	Badges   []capBadge
	Untested []string
}

var capKeys = []string{"models_listed", "chat", "stream", "tools", "responses", "anthropic"}

func capBadges(m map[string]any) capView {
	var cv capView
	if len(m) == 0 {
		return cv
	}
	tested := map[string]bool{}
	raw, listed := m["tested"] // present (even empty or null): the profile says what was tested
	switch l := raw.(type) {
	case []any:
		for _, x := range l {
			if s, ok := x.(string); ok {
				tested[s] = true
			}
		}
	case []string:
		for _, s := range l {
			tested[s] = true
		}
	}
	chat, _ := m["chat"].(bool)
	for _, k := range capKeys {
		v, ok := m[k]
		if !ok {
			continue
		}
		b, _ := v.(bool)
		was := tested[k]
		if !listed {
			// Profiles stored before "tested": the prober tries the list and the chat
			// first, the rest only after a working chat.
			was = b || k == "models_listed" || k == "chat" || chat
		}
		if !was {
			cv.Untested = append(cv.Untested, k)
			continue
		}
		cv.Badges = append(cv.Badges, capBadge{Key: k, On: b})
	}
	return cv
}

type itemRow struct {
	*store.Item
	Number    int // in the batch, from 1
	Caps      capView
	Failing   *store.Attempt // the attempt whose evidence explains the failure
	Duplicate *store.ItemLabel
}

type batchData struct {
	Batch     *store.Batch
	Host      *store.Host
	Counts    []count
	Items     []itemRow
	Pager     pager
	Resources []resRow
	ResTotal  int
	Runs      []runRow
	Groups    []store.BatchGroup
	Running   bool
	Done      string
	DoneN     int
	Actions   []string
}

func (h *Handler) batchDetail(c *fiber.Ctx) error {
	ctx := c.UserContext()
	id := strings.Clone(c.Params("id"))
	b, err := h.Store.GetBatch(ctx, id)
	if err != nil {
		return h.notFoundOr(c, err)
	}
	d := batchData{Batch: b, Running: running(b.Status)}
	if ho, err := h.Store.GetHost(ctx, b.HostID); err == nil {
		d.Host = ho
	}
	counts, err := h.Store.StatusCounts(ctx, b.ID)
	if err != nil {
		return err
	}
	d.Counts = orderedCounts(counts)
	if d.Groups, err = h.Store.BatchGroups(ctx, b); err != nil {
		return err
	}
	page := pageParam(c)
	items, total, err := h.Store.ListItems(ctx, b.ID, itemPageSize, (page-1)*itemPageSize)
	if err != nil {
		return err
	}
	d.Pager = newPager(page, itemPageSize, total)
	var dups []string
	for i := range items {
		dups = append(dups, items[i].DuplicateOf)
	}
	dupLabels, err := h.Store.ItemLabels(ctx, dups)
	if err != nil {
		return err
	}
	for i := range items {
		it := &items[i]
		row := itemRow{Item: it, Number: it.Idx + 1, Caps: capBadges(it.Capability)}
		if l, ok := dupLabels[it.DuplicateOf]; ok {
			row.Duplicate = &l
		}
		if it.Status == store.ItemFailed || it.FailureClass != "" {
			atts, err := h.Store.ListAttempts(ctx, it.ID)
			if err != nil {
				return err
			}
			row.Failing = failingAttempt(atts)
		}
		d.Items = append(d.Items, row)
	}
	res, resTotal, err := h.Store.ListResources(ctx, store.ResourceFilter{BatchID: b.ID, Limit: 500})
	if err != nil {
		return err
	}
	if d.Resources, err = h.resRows(ctx, res); err != nil {
		return err
	}
	d.ResTotal = resTotal
	runs, err := h.Store.ListReconcileRuns(ctx, b.HostID, b.ID, 10)
	if err != nil {
		return err
	}
	if d.Runs, err = h.runRows(ctx, runs); err != nil {
		return err
	}
	d.Actions = availableActions(b, counts, d.ResTotal)
	d.Done, d.DoneN = doneParam(c)
	v := &view{Title: "batch.title", Data: d}
	if d.Running || runsActive(runs) {
		v.Refresh = refreshSecs
	}
	return h.renderView(c, fiber.StatusOK, "batch", v)
}

// failingAttempt picks the newest failed attempt (or the newest with a failure class).
func failingAttempt(atts []store.Attempt) *store.Attempt {
	for i := len(atts) - 1; i >= 0; i-- {
		if atts[i].Outcome == store.OutcomeFailed || atts[i].FailureClass != "" {
			return &atts[i]
		}
	}
	if len(atts) > 0 {
		return &atts[len(atts)-1]
	}
	return nil
}

// availableActions lists the actions that make sense for the batch right now. The
// routes accept every action; Actions decides what is allowed.
func availableActions(b *store.Batch, counts map[string]int, ledger int) []string {
	var out []string
	if counts[store.ItemFailed] > 0 {
		out = append(out, "retry")
	}
	if running(b.Status) {
		out = append(out, "cancel")
	}
	if b.DryRun {
		out = append(out, "import")
	} else {
		out = append(out, "reconcile")
		if ledger > 0 && !running(b.Status) && b.Status != store.BatchRolledBack {
			out = append(out, "rollback")
		}
	}
	return out
}

func doneParam(c *fiber.Ctx) (string, int) {
	done := c.Query("done")
	for _, a := range batchActions {
		if a == done {
			return a, c.QueryInt("n", 0)
		}
	}
	switch done {
	case "hostreconcile", "preview", "submitted":
		return done, 0
	}
	return "", 0
}

// ---- item detail ----

type itemData struct {
	Batch     *store.Batch
	Item      *store.Item
	Number    int // in the batch, from 1
	Caps      capView
	Attempts  []store.Attempt
	Resources []resRow
	ResTotal  int
	Terminal  bool
	Duplicate *store.ItemLabel
}

func (h *Handler) itemDetail(c *fiber.Ctx) error {
	ctx := c.UserContext()
	b, err := h.Store.GetBatch(ctx, strings.Clone(c.Params("id")))
	if err != nil {
		return h.notFoundOr(c, err)
	}
	it, err := h.Store.GetItem(ctx, strings.Clone(c.Params("item")))
	if err != nil {
		return h.notFoundOr(c, err)
	}
	if it.BatchID != b.ID {
		return h.renderError(c, fiber.StatusNotFound, "err.notfound", "")
	}
	atts, err := h.Store.ListAttempts(ctx, it.ID)
	if err != nil {
		return err
	}
	res, resTotal, err := h.Store.ListResources(ctx, store.ResourceFilter{ItemID: it.ID, Limit: 100})
	if err != nil {
		return err
	}
	rows, err := h.resRows(ctx, res)
	if err != nil {
		return err
	}
	d := itemData{Batch: b, Item: it, Number: it.Idx + 1, Caps: capBadges(it.Capability), Attempts: atts, Resources: rows, ResTotal: resTotal, Terminal: store.IsTerminal(it.Status)}
	if it.DuplicateOf != "" {
		if l, err := h.Store.ItemLabels(ctx, []string{it.DuplicateOf}); err == nil {
			if x, ok := l[it.DuplicateOf]; ok {
				d.Duplicate = &x
			}
		}
	}
	v := &view{Title: "item.title", Data: d}
	if running(b.Status) && !store.IsTerminal(it.Status) {
		v.Refresh = refreshSecs
	}
	return h.renderView(c, fiber.StatusOK, "item", v)
}

// ---- actions ----

type confirmData struct {
	Action string // dictionary suffix: retry, cancel, ..., hostreconcile
	Target string // what the action applies to (batch or host name/id)
	Post   string // form action
	Back   string
}

func (h *Handler) confirmBatch(c *fiber.Ctx, action string) error {
	b, err := h.Store.GetBatch(c.UserContext(), strings.Clone(c.Params("id")))
	if err != nil {
		return h.notFoundOr(c, err)
	}
	target := b.ID
	if b.Name != "" {
		target = b.Name + " (" + b.ID + ")"
	}
	return h.render(c, fiber.StatusOK, "confirm", "confirm.title", confirmData{
		Action: action, Target: target, Post: "/batches/" + b.ID + "/" + action, Back: "/batches/" + b.ID,
	})
}

func (h *Handler) batchAction(c *fiber.Ctx, action string) error {
	id := strings.Clone(c.Params("id"))
	ctx := c.UserContext()
	if _, err := h.Store.GetBatch(ctx, id); err != nil {
		return h.notFoundOr(c, err)
	}
	if destructive[action] && c.FormValue("confirm") != "yes" {
		return c.Redirect("/batches/"+id+"/"+action, fiber.StatusSeeOther)
	}
	if h.Actions == nil {
		return h.renderError(c, fiber.StatusServiceUnavailable, "err.action", "actions are not configured")
	}
	var (
		n   int
		err error
		to  = "/batches/" + id
	)
	switch action {
	case "retry":
		n, err = h.Actions.Retry(ctx, id)
	case "cancel":
		n, err = h.Actions.Cancel(ctx, id)
	case "rollback":
		err = h.Actions.Rollback(ctx, id)
	case "reconcile":
		_, err = h.Actions.Reconcile(ctx, id)
	case "import":
		var nid string
		nid, err = h.Actions.ImportDryRun(ctx, id)
		if err == nil {
			to = "/batches/" + nid
		}
	default:
		return h.renderError(c, fiber.StatusNotFound, "err.badaction", "")
	}
	if err != nil {
		return h.actionFailed(c, action, id, err)
	}
	h.Log.Info("web: batch action", "action", action, "batch_id", id, "n", n, "ip", c.IP())
	return c.Redirect(fmt.Sprintf("%s?done=%s&n=%d", to, action, n), fiber.StatusSeeOther)
}

func (h *Handler) actionFailed(c *fiber.Ctx, action, id string, err error) error {
	h.Log.Warn("web: action failed", "action", action, "id", id, "error", err)
	status := fiber.StatusConflict
	var fe *fiber.Error
	var st interface{ HTTPStatus() int }
	switch {
	case errors.Is(err, store.ErrNotFound):
		status = fiber.StatusNotFound
	case errors.As(err, &fe):
		status = fe.Code
	case errors.As(err, &st):
		status = st.HTTPStatus()
	}
	return h.renderError(c, status, "err.action", err.Error())
}

func (h *Handler) confirmHostReconcile(c *fiber.Ctx) error {
	ho, err := h.Store.GetHost(c.UserContext(), strings.Clone(c.Params("id")))
	if err != nil {
		return h.notFoundOr(c, err)
	}
	return h.render(c, fiber.StatusOK, "confirm", "confirm.title", confirmData{
		Action: "hostreconcile", Target: ho.Name, Post: "/hosts/" + ho.ID + "/reconcile", Back: "/hosts/" + ho.ID,
	})
}

func (h *Handler) hostReconcile(c *fiber.Ctx) error {
	id := strings.Clone(c.Params("id"))
	if _, err := h.Store.GetHost(c.UserContext(), id); err != nil {
		return h.notFoundOr(c, err)
	}
	if h.Actions == nil {
		return h.renderError(c, fiber.StatusServiceUnavailable, "err.action", "actions are not configured")
	}
	if _, err := h.Actions.ReconcileHost(c.UserContext(), id); err != nil {
		return h.actionFailed(c, "hostreconcile", id, err)
	}
	h.Log.Info("web: host reconcile", "host_id", id, "ip", c.IP())
	return c.Redirect("/hosts/"+id+"?done=hostreconcile", fiber.StatusSeeOther)
}

// ---- hosts ----

type hostListData struct {
	Hosts []store.Host
	// Deleted names the host just deleted, with what was removed with it.
	Deleted               string
	DeletedLedger, DelBat int
}

func (h *Handler) listHosts(c *fiber.Ctx) error {
	hosts, err := h.Store.ListHosts(c.UserContext())
	if err != nil {
		return err
	}
	d := hostListData{Hosts: hosts}
	if c.Query("done") == "deleted" {
		d.Deleted, d.DeletedLedger, d.DelBat = strings.Clone(c.Query("name")), c.QueryInt("ledger", 0), c.QueryInt("batches", 0)
	}
	return h.render(c, fiber.StatusOK, "hosts", "hosts.title", d)
}

type flag struct {
	Name string
	On   bool
}

type hostData struct {
	Host      *store.Host
	Flags     []flag
	Runs      []runRow
	Resources []resRow
	ResTotal  int
	Batches   []store.Batch
	BatchN    int
	Done      string
	Test      *hostreg.TestResult // the answer of "test connection", when just asked
}

func (h *Handler) hostDetail(c *fiber.Ctx) error {
	return h.renderHost(c, strings.Clone(c.Params("id")), nil)
}

// hostDone are the flashes of the host page (?done=).
var hostDone = map[string]bool{"hostreconcile": true, "registered": true, "updated": true, "unchanged": true}

func (h *Handler) renderHost(c *fiber.Ctx, id string, test *hostreg.TestResult) error {
	ctx := c.UserContext()
	ho, err := h.Store.GetHost(ctx, id)
	if err != nil {
		return h.notFoundOr(c, err)
	}
	d := hostData{Host: ho, Test: test}
	for k, v := range ho.Flags {
		d.Flags = append(d.Flags, flag{k, v})
	}
	sort.Slice(d.Flags, func(i, j int) bool { return d.Flags[i].Name < d.Flags[j].Name })
	runs, err := h.Store.ListReconcileRuns(ctx, ho.ID, "", 10)
	if err != nil {
		return err
	}
	if d.Runs, err = h.runRows(ctx, runs); err != nil {
		return err
	}
	res, resTotal, err := h.Store.ListResources(ctx, store.ResourceFilter{HostID: ho.ID, Limit: 500})
	if err != nil {
		return err
	}
	if d.Resources, err = h.resRows(ctx, res); err != nil {
		return err
	}
	d.ResTotal = resTotal
	if d.Batches, d.BatchN, err = h.Store.ListBatches(ctx, store.BatchFilter{HostID: ho.ID, Limit: 10}); err != nil {
		return err
	}
	if done := c.Query("done"); hostDone[done] && test == nil {
		d.Done = done
	}
	v := &view{Title: "host.title", Data: d}
	if runsActive(runs) && test == nil {
		v.Refresh = refreshSecs // follow the progress of a running reconcile
	}
	return h.renderView(c, fiber.StatusOK, "host", v)
}

// runsActive reports whether a reconcile run is queued or running.
func runsActive(runs []store.ReconcileRun) bool {
	for _, r := range runs {
		if r.Status == store.RunQueued || r.Status == store.RunRunning {
			return true
		}
	}
	return false
}

func (h *Handler) notFoundOr(c *fiber.Ctx, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return h.renderError(c, fiber.StatusNotFound, "err.notfound", "")
	}
	return err
}

// resRow is a ledger row with the item it belongs to named (number and name), not by ID.
type resRow struct {
	store.Resource
	Item *store.ItemLabel
}

func (h *Handler) resRows(ctx context.Context, res []store.Resource) ([]resRow, error) {
	ids := make([]string, 0, len(res))
	for _, r := range res {
		ids = append(ids, r.ItemID)
	}
	labels, err := h.Store.ItemLabels(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]resRow, len(res))
	for i, r := range res {
		out[i] = resRow{Resource: r}
		if l, ok := labels[r.ItemID]; ok {
			out[i].Item = &l
		}
	}
	return out, nil
}

// runRow is a reconcile run with its batch named.
type runRow struct {
	store.ReconcileRun
	BatchName string
}

func (h *Handler) runRows(ctx context.Context, runs []store.ReconcileRun) ([]runRow, error) {
	ids := make([]string, 0, len(runs))
	for _, r := range runs {
		ids = append(ids, r.BatchID)
	}
	names, err := h.Store.BatchNames(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]runRow, len(runs))
	for i, r := range runs {
		out[i] = runRow{ReconcileRun: r, BatchName: names[r.BatchID]}
	}
	return out, nil
}
