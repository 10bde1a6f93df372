package hostsim

import (
	"net/http"
	"strconv"
)

// page reads page/page_size (alias limit) like the hosts: invalid values fall
// back to the defaults, and so does a page_size above 1000 (sub2api's ParsePagination
// keeps only 1..1000; a client asking for more silently gets pages of 20).
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
	if n, err := strconv.Atoi(ps); err == nil && n > 0 && n <= 1000 {
		size = n
	}
	return pg, size
}

// paginate slices items and builds the paginated payload.
func paginate(r *http.Request, items []any) map[string]any {
	return paginateFunc(r, len(items), func(i int) any { return items[i] })
}

// paginateFunc builds the paginated payload of a list of total rows, building only the
// rows of the requested page (item(i) for the i-th row of the whole list): a page of a
// large list costs what the page holds, like a database query with LIMIT/OFFSET.
func paginateFunc(r *http.Request, total int, item func(i int) any) map[string]any {
	pg, size := page(r)
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
	out := make([]any, 0, end-start)
	for i := start; i < end; i++ {
		out = append(out, item(i))
	}
	return map[string]any{"items": out, "total": total, "page": pg, "page_size": size, "pages": pages}
}
