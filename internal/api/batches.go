package api

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/cn-relay-manager/cn-relay-manager/internal/catalog"
	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/step"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
	"github.com/cn-relay-manager/cn-relay-manager/jobs"
)

// Fields tagged text:"free" are free text: besides printable characters they may hold tabs
// and newlines; no request field may hold another control character (decodeStrict).
type itemRequest struct {
	Name     string   `json:"name" text:"free"`
	BaseURL  string   `json:"base_url"`
	APIKey   string   `json:"api_key"`
	Provider string   `json:"provider"`
	Models   []string `json:"models"`
}

type windowRequest struct {
	DeadlineS float64   `json:"deadline_s"`
	ScheduleS []float64 `json:"schedule_s"`
}

// targetGroupRequest is the batch's target group (store.TargetGroup).
type targetGroupRequest struct {
	Mode   string `json:"mode"`
	Name   string `json:"name"`
	ID     int64  `json:"id"`
	Prefix string `json:"prefix"`
}

// accountRequest holds the scheduling settings of the accounts a batch creates.
type accountRequest struct {
	Priority    *int `json:"priority"`
	Concurrency *int `json:"concurrency"`
	Weight      *int `json:"weight"`
}

type batchRequest struct {
	HostID       string              `json:"host_id"`
	Name         string              `json:"name" text:"free"`
	Mode         string              `json:"mode"`
	DryRun       bool                `json:"dry_run"`
	Force        bool                `json:"force"`
	Window       *windowRequest      `json:"window"`
	TopUpAmount  float64             `json:"topup_amount"`
	ValidityDays int                 `json:"validity_days"`
	TargetGroup  *targetGroupRequest `json:"target_group"`
	Account      *accountRequest     `json:"account"`
	Items        []itemRequest       `json:"items"`
}

// batchView is a batch with its per-status item counts (and, for one batch, its groups).
type batchView struct {
	*store.Batch
	Counts map[string]int     `json:"counts"`
	Groups []store.BatchGroup `json:"groups,omitempty"`
}

// submittedItem is what the submission made of one item before anything is probed: the
// provider, the OpenAI-compatible base the host gets and the Anthropic-compatible base kept
// beside it.
type submittedItem struct {
	Index             int      `json:"index"`
	ID                string   `json:"id"`
	Name              string   `json:"name"`
	Provider          string   `json:"provider"`
	DetectedBy        string   `json:"detected_by"`
	SuggestedProvider string   `json:"suggested_provider,omitempty"`
	NormalizedURL     string   `json:"normalized_url"`
	AnthropicBaseURL  string   `json:"anthropic_base_url"`
	Notes             []string `json:"notes"`
}

func (s *Server) submitBatch(c *fiber.Ctx) error {
	var req batchRequest
	if err := decodeStrict(c, &req); err != nil {
		return err
	}
	ctx := c.UserContext()
	if req.HostID == "" {
		return badField("host_id", "host_id is required")
	}
	h, err := s.Store.GetHost(ctx, req.HostID)
	if errors.Is(err, store.ErrNotFound) {
		return badField("host_id", "no host with this id is registered")
	} else if err != nil {
		return err
	}
	// A retried submission (the answer was lost) carries the same Idempotency-Key and gets
	// the batch the first one created instead of a second import of every key.
	idem := strings.TrimSpace(c.Get("Idempotency-Key"))
	if len(idem) > 200 {
		return badField("Idempotency-Key", "the Idempotency-Key header is at most 200 characters")
	}
	if r, bad := controlChar(idem, false); bad || !utf8.ValidString(idem) {
		return badField("Idempotency-Key", fmt.Sprintf("the Idempotency-Key header must be printable UTF-8 text (found U+%04X or invalid bytes)", r))
	}
	if idem != "" {
		if prev, err := s.Store.GetBatchByIdempotencyKey(ctx, h.ID, idem); err == nil {
			return s.replaySubmit(c, prev)
		}
	}
	b, items, notes, err := s.buildBatch(h, &req)
	if err != nil {
		return err
	}
	if idem != "" {
		b.IdempotencyKey = &idem
	}
	if err := s.Store.CreateBatch(ctx, b, items); err != nil {
		if idem != "" {
			if prev, gerr := s.Store.GetBatchByIdempotencyKey(ctx, h.ID, idem); gerr == nil {
				return s.replaySubmit(c, prev) // lost a race with the same submission
			}
		}
		return err
	}
	c.Locals(localBatchID, b.ID)
	// The batch is committed; enqueue failures are repaired by the recovery sweep.
	enqueued := s.enqueueAll(ctx, b.ID, items)
	counts, err := s.Store.StatusCounts(ctx, b.ID)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"batch": batchView{Batch: b, Counts: counts}, "enqueued": enqueued, "items": submittedItems(items, notes)})
}

func submittedItems(items []*store.Item, notes [][]string) []submittedItem {
	out := make([]submittedItem, 0, len(items))
	for i, it := range items {
		n := []string{}
		if i < len(notes) && notes[i] != nil {
			n = notes[i]
		}
		out = append(out, submittedItem{Index: it.Idx, ID: it.ID, Name: it.Name, Provider: it.Provider, DetectedBy: it.DetectedBy,
			SuggestedProvider: it.SuggestedProvider, NormalizedURL: it.NormalizedURL, AnthropicBaseURL: it.AnthropicBaseURL, Notes: n})
	}
	return out
}

func (s *Server) buildBatch(h *store.Host, req *batchRequest) (*store.Batch, []*store.Item, [][]string, error) {
	var err error
	if req.Mode == "" {
		req.Mode = "self_service"
	}
	switch req.Mode {
	case "self_service", "subscription", "none":
	default:
		return nil, nil, nil, badField("mode", "mode must be one of subscription, self_service, none")
	}
	if len(req.Items) == 0 {
		return nil, nil, nil, badField("items", "items must hold at least one item")
	}
	if len(req.Items) > MaxBatchItems {
		return nil, nil, nil, badField("items", fmt.Sprintf("a batch holds at most %d items", MaxBatchItems))
	}
	if len(req.Name) > 200 {
		return nil, nil, nil, badField("name", "name is at most 200 characters")
	}
	opts := store.BatchOptions{TopUpAmount: req.TopUpAmount, ValidityDays: req.ValidityDays}
	if req.TopUpAmount < 0 {
		return nil, nil, nil, badField("topup_amount", "topup_amount must be positive")
	}
	if req.ValidityDays < 0 || req.ValidityDays > 36500 {
		return nil, nil, nil, badField("validity_days", "validity_days must be between 1 and 36500")
	}
	if w := req.Window; w != nil {
		if w.DeadlineS < 0 || w.DeadlineS > 24*3600 {
			return nil, nil, nil, badField("window.deadline_s", "window.deadline_s must be between 1 and 86400 seconds")
		}
		for _, d := range w.ScheduleS {
			if d < 1 || d > 3600 {
				return nil, nil, nil, badField("window.schedule_s", "every window.schedule_s delay must be between 1 and 3600 seconds")
			}
		}
		opts.WindowDeadlineS, opts.WindowScheduleS = w.DeadlineS, w.ScheduleS
	}
	if opts.TargetGroup, err = targetGroup(req.TargetGroup); err != nil {
		return nil, nil, nil, err
	}
	if opts.Account, err = accountSettings(req.Account); err != nil {
		return nil, nil, nil, err
	}
	b := &store.Batch{HostID: h.ID, Name: strings.TrimSpace(req.Name), Mode: req.Mode, DryRun: req.DryRun, Force: req.Force, Options: opts}
	items := make([]*store.Item, 0, len(req.Items))
	notes := make([][]string, 0, len(req.Items))
	seen := map[string]int{}
	for i, in := range req.Items {
		it, note, err := s.buildItem(i, in)
		if err != nil {
			return nil, nil, nil, err
		}
		if j, dup := seen[it.KeyFingerprint]; dup && !req.Force {
			return nil, nil, nil, badField(fmt.Sprintf("items[%d].api_key", i), fmt.Sprintf("the same key is already item %d of this batch", j))
		}
		seen[it.KeyFingerprint] = i
		items = append(items, it)
		notes = append(notes, note)
	}
	return b, items, notes, nil
}

// buildItem validates one item and interprets its pasted base URL, key and hint the way the
// import step will (normalise, detect), so that a line the product cannot answer is refused
// here with a reason the operator can act on. It returns the interpretation's notes.
func (s *Server) buildItem(i int, in itemRequest) (*store.Item, []string, error) {
	field := func(f string) string { return fmt.Sprintf("items[%d].%s", i, f) }
	key := strings.TrimSpace(in.APIKey)
	switch {
	case key == "":
		return nil, nil, badField(field("api_key"), "api_key is required")
	case len(key) > 512 || strings.ContainsAny(key, " \t\r\n"):
		return nil, nil, badField(field("api_key"), "api_key must be one token of at most 512 characters")
	}
	if len(in.Provider) > 40 {
		return nil, nil, badField(field("provider"), "provider is at most 40 characters")
	}
	ip := s.Catalog.Interpret(catalog.Input{BaseURL: in.BaseURL, APIKey: key, Hint: in.Provider})
	if ip.Refusal != "" {
		return nil, nil, badField(field("base_url"), ip.Refusal)
	}
	norm := ip.URL
	if s.Egress != nil {
		if err := s.Egress.CheckURL(norm.BaseURL); err != nil {
			return nil, nil, badField(field("base_url"), err.Error())
		}
	}
	if len(in.Name) > 200 {
		return nil, nil, badField(field("name"), "name is at most 200 characters")
	}
	if len(in.Models) > 100 {
		return nil, nil, badField(field("models"), "at most 100 models per item")
	}
	models := []string{}
	for j, m := range in.Models {
		if len(m) > 200 || strings.TrimSpace(m) == "" {
			return nil, nil, badField(fmt.Sprintf("items[%d].models[%d]", i, j), "model names are non-empty and at most 200 characters")
		}
		models = append(models, m)
	}
	sealed, err := s.Box.Seal(key)
	if err != nil {
		return nil, nil, err
	}
	name := strings.TrimSpace(in.Name)
	if name == "" {
		name = truncateText(fmt.Sprintf("item-%d %s", i+1, norm.Host), 200)
	}
	return &store.Item{Name: name, BaseURL: catalog.WithoutQuery(in.BaseURL), NormalizedURL: norm.BaseURL, ProviderHint: strings.TrimSpace(in.Provider),
		AnthropicBaseURL: norm.AnthropicBase, Provider: ip.Detection.ProviderID, DetectedBy: ip.Detection.By, SuggestedProvider: ip.Detection.Suggested,
		APIKeyEnc: sealed, KeyMasked: secret.Mask(key), KeyFingerprint: s.Box.Fingerprint(key),
		RequestedModels: models, Step: step.Import}, ip.Notes, nil
}

// truncateText cuts s to at most n bytes without splitting a character.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

func (s *Server) listBatches(c *fiber.Ctx) error {
	page, size, err := pageParams(c)
	if err != nil {
		return err
	}
	list, total, err := s.Store.ListBatches(c.UserContext(), store.BatchFilter{HostID: c.Query("host_id"), Status: c.Query("status"),
		Limit: size, Offset: (page - 1) * size})
	if err != nil {
		return err
	}
	views := make([]batchView, 0, len(list))
	for i := range list {
		counts, err := s.Store.StatusCounts(c.UserContext(), list[i].ID)
		if err != nil {
			return err
		}
		views = append(views, batchView{Batch: &list[i], Counts: counts})
	}
	return c.JSON(fiber.Map{"items": views, "total": total, "page": page, "page_size": size})
}

func (s *Server) loadBatch(ctx context.Context, id string) (batchView, error) {
	b, err := s.Store.GetBatch(ctx, id)
	if err != nil {
		return batchView{}, err
	}
	counts, err := s.Store.StatusCounts(ctx, id)
	return batchView{Batch: b, Counts: counts}, err
}

func (s *Server) getBatch(c *fiber.Ctx) error {
	v, err := s.loadBatch(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	if v.Groups, err = s.Store.BatchGroups(c.UserContext(), v.Batch); err != nil {
		return err
	}
	return c.JSON(v)
}

func (s *Server) listItems(c *fiber.Ctx) error {
	if _, err := s.Store.GetBatch(c.UserContext(), c.Params("id")); err != nil {
		return err
	}
	page, size := c.QueryInt("page", 1), c.QueryInt("page_size", 1000)
	if page < 1 || size < 1 || size > 1000 {
		return badField("page_size", "page must be 1 or more and page_size between 1 and 1000")
	}
	items, total, err := s.Store.ListItems(c.UserContext(), c.Params("id"), size, (page-1)*size)
	if err != nil {
		return err
	}
	if items == nil {
		items = []store.Item{}
	}
	return c.JSON(fiber.Map{"items": items, "total": total, "page": page, "page_size": size})
}

func (s *Server) getItem(c *fiber.Ctx) error {
	it, err := s.Store.GetItem(c.UserContext(), c.Params("item"))
	if err != nil {
		return err
	}
	if it.BatchID != c.Params("id") {
		return &APIError{Status: fiber.StatusNotFound, Code: "not_found", Message: "item not found in this batch"}
	}
	atts, err := s.Store.ListAttempts(c.UserContext(), it.ID)
	if err != nil {
		return err
	}
	if atts == nil {
		atts = []store.Attempt{}
	}
	return c.JSON(fiber.Map{"item": it, "attempts": atts})
}

func (s *Server) retryBatch(c *fiber.Ctx) error {
	n, err := s.RetryBatch(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	v, err := s.loadBatch(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"batch": v, "retried": n})
}

func (s *Server) cancelBatch(c *fiber.Ctx) error {
	n, err := s.CancelBatch(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	v, err := s.loadBatch(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"batch": v, "cancelled": n})
}

func (s *Server) listResources(c *fiber.Ctx) error {
	page, size, err := pageParams(c)
	if err != nil {
		return err
	}
	rows, total, err := s.Store.ListResources(c.UserContext(), store.ResourceFilter{HostID: c.Query("host_id"), BatchID: c.Query("batch_id"),
		Type: c.Query("resource_type"), State: c.Query("state"), Limit: size, Offset: (page - 1) * size})
	if err != nil {
		return err
	}
	if rows == nil {
		rows = []store.Resource{}
	}
	return c.JSON(fiber.Map{"items": rows, "total": total, "page": page, "page_size": size})
}

func (s *Server) replaySubmit(c *fiber.Ctx, b *store.Batch) error {
	counts, err := s.Store.StatusCounts(c.UserContext(), b.ID)
	if err != nil {
		return err
	}
	var ptrs []*store.Item
	for {
		page, total, err := s.Store.ListItems(c.UserContext(), b.ID, MaxBatchItems, len(ptrs))
		if err != nil {
			return err
		}
		for i := range page {
			ptrs = append(ptrs, &page[i])
		}
		if len(page) == 0 || len(ptrs) >= total {
			break
		}
	}
	c.Set("Idempotency-Replayed", "true")
	return c.Status(fiber.StatusOK).JSON(fiber.Map{"batch": batchView{Batch: b, Counts: counts}, "enqueued": 0, "items": submittedItems(ptrs, nil)})
}

// enqueueAll enqueues the first step of every item with a few concurrent Redis round
// trips (one by one, 10 000 items took ~0.9 s). Failures are logged: the batch is already
// committed and the recovery sweep enqueues whatever is missing.
func (s *Server) enqueueAll(ctx context.Context, batchID string, items []*store.Item) int {
	const workers = 8
	var ok atomic.Int64
	next := make(chan *store.Item)
	var wg sync.WaitGroup
	for w := 0; w < min(workers, len(items)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range next {
				if err := s.Queue.EnqueueStep(ctx, it.Step, it.ID, it.Seq, time.Now()); err != nil && !errors.Is(err, jobs.ErrExists) {
					s.Log.Warn("enqueue import failed; the recovery sweep will retry", "batch_id", batchID, "item_id", it.ID, "error", err)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	for _, it := range items {
		next <- it
	}
	close(next)
	wg.Wait()
	return int(ok.Load())
}

// groupNameChars are what a target group name or prefix may hold: the host allows more,
// but names end up in URLs, logs and the operator's scripts.
var groupNameChars = regexp.MustCompile(`^[\p{L}\p{N} ._:/()+-]+$`)

// targetGroup validates the batch's target group; none means per_provider.
func targetGroup(in *targetGroupRequest) (store.TargetGroup, error) {
	if in == nil {
		return store.TargetGroup{Mode: store.GroupPerProvider}, nil
	}
	tg := store.TargetGroup{Mode: strings.TrimSpace(in.Mode), Name: strings.TrimSpace(in.Name), ID: in.ID, Prefix: in.Prefix}
	if tg.Mode == "" {
		tg.Mode = store.GroupPerProvider
	}
	switch tg.Mode {
	case store.GroupPerProvider:
		if tg.Name != "" || tg.ID != 0 {
			return tg, badField("target_group.name", "name and id belong to target_group mode existing; per_provider names its groups itself (set prefix to change them)")
		}
		if len(tg.Prefix) > 40 || tg.Prefix != "" && !groupNameChars.MatchString(tg.Prefix) {
			return tg, badField("target_group.prefix", "prefix is at most 40 letters, digits, spaces or ._:/()+-")
		}
	case store.GroupExisting:
		switch {
		case tg.Prefix != "":
			return tg, badField("target_group.prefix", "prefix belongs to target_group mode per_provider")
		case tg.Name == "" && tg.ID == 0:
			return tg, badField("target_group.name", "mode existing needs the group's name or id")
		case tg.Name != "" && tg.ID != 0:
			return tg, badField("target_group.id", "give the group's name or its id, not both")
		case tg.ID < 0:
			return tg, badField("target_group.id", "id must be a positive host group id")
		case len(tg.Name) > 100 || tg.Name != "" && !groupNameChars.MatchString(tg.Name):
			return tg, badField("target_group.name", "name is at most 100 letters, digits, spaces or ._:/()+-")
		}
	case store.GroupPerItem:
		if tg.Name != "" || tg.ID != 0 || tg.Prefix != "" {
			return tg, badField("target_group.mode", "per_item takes no name, id or prefix")
		}
	default:
		return tg, badField("target_group.mode", "target_group.mode must be one of per_provider, existing, per_item")
	}
	return tg, nil
}

// accountSettings validates the accounts' scheduling settings.
func accountSettings(in *accountRequest) (store.AccountSettings, error) {
	if in == nil {
		return store.AccountSettings{}, nil
	}
	check := func(field string, v *int, lo, hi int) error {
		if v != nil && (*v < lo || *v > hi) {
			return badField("account."+field, fmt.Sprintf("account.%s must be between %d and %d", field, lo, hi))
		}
		return nil
	}
	if err := check("priority", in.Priority, 0, 10000); err != nil {
		return store.AccountSettings{}, err
	}
	if err := check("concurrency", in.Concurrency, 0, 10000); err != nil {
		return store.AccountSettings{}, err
	}
	if err := check("weight", in.Weight, 1, 10000); err != nil {
		return store.AccountSettings{}, err
	}
	return store.AccountSettings{Priority: in.Priority, Concurrency: in.Concurrency, Weight: in.Weight}, nil
}
