package api

import (
	"context"

	"github.com/gofiber/fiber/v2"

	"github.com/cn-relay-manager/cn-relay-manager/internal/batch"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

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
	var req batch.Request
	if err := decodeStrict(c, &req); err != nil {
		return err
	}
	// A retried submission (the answer was lost) carries the same Idempotency-Key and gets
	// the batch the first one created instead of a second import of every key.
	req.IdempotencyKey = c.Get("Idempotency-Key")
	sub, err := s.Batches.Submit(c.UserContext(), req)
	if err != nil {
		return err
	}
	counts, err := s.Store.StatusCounts(c.UserContext(), sub.Batch.ID)
	if err != nil {
		return err
	}
	status := fiber.StatusCreated
	if sub.Replayed {
		c.Set("Idempotency-Replayed", "true")
		status = fiber.StatusOK
	} else {
		c.Locals(localBatchID, sub.Batch.ID)
	}
	return c.Status(status).JSON(fiber.Map{"batch": batchView{Batch: sub.Batch, Counts: counts}, "enqueued": sub.Enqueued,
		"items": submittedItems(sub.Items, sub.Notes)})
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
	n, err := s.Batches.Retry(c.UserContext(), c.Params("id"))
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
	n, err := s.Batches.Cancel(c.UserContext(), c.Params("id"))
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
