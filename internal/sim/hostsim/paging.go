package hostsim

import (
	"net/http"
	"strconv"
)

// page reads page/page_size (alias limit) like the hosts: invalid values fall
// back to the defaults, page_size is capped at 1000.
func page(r *http.Request) (pg, size int) {
	q := r.URL.Query()
	pg, size = 1, 20
	if n, err := strconv.Atoi(q.Get("page")); err == nil && n > 0 {
		pg = n
	}
	ps := q.Get("page_size")
	if ps == "" {
		ps = q.Get("limit")
	}
	if n, err := strconv.Atoi(ps); err == nil && n > 0 {
		size = n
	}
	if size > 1000 {
		size = 1000
	}
	return pg, size
}

// paginate slices items and builds the paginated payload.
func paginate(r *http.Request, items []any) map[string]any {
	pg, size := page(r)
	total := len(items)
	start := (pg - 1) * size
	if start > total {
		start = total
	}
	end := start + size
	if end > total {
		end = total
	}
	pages := (total + size - 1) / size
	if pages == 0 {
		pages = 1
	}
	out := items[start:end]
	if out == nil {
		out = []any{}
	}
	return map[string]any{"items": out, "total": total, "page": pg, "page_size": size, "pages": pages}
}
