package host

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// pathID extracts the numeric id of a fixture path like /api/v1/admin/accounts/18/test.
func pathID(t *testing.T, fx *fixtureFile) int64 {
	t.Helper()
	p := fx.Request.Path
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	for _, seg := range strings.Split(p, "/") {
		if n, err := strconv.ParseInt(seg, 10, 64); err == nil {
			return n
		}
	}
	t.Fatalf("no id in %s", fx.Request.Path)
	return 0
}

// requestBody decodes the recorded request body into v.
func requestBody(t *testing.T, fx *fixtureFile, v any) {
	t.Helper()
	if err := json.Unmarshal(fx.Request.Body, v); err != nil {
		t.Fatalf("%s request body: %v", fx.name, err)
	}
}

func TestGroupsCreateGetDelete(t *testing.T) {
	ctx := context.Background()
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			rp := newReplay(t, v, "groups.create.ok")
			c := rp.adminClient()
			fx := loadFixture(t, v, "groups.create.ok")
			var in struct {
				Name, Description, Platform string
				RateMultiplier              float64 `json:"rate_multiplier"`
				SubscriptionType            string  `json:"subscription_type"`
			}
			requestBody(t, fx, &in)
			g, err := c.CreateGroup(ctx, CreateGroupRequest{Name: in.Name, Description: in.Description,
				Platform: in.Platform, SubscriptionType: in.SubscriptionType, RateMultiplier: in.RateMultiplier})
			if err != nil {
				t.Fatal(err)
			}
			assertSentAsRecorded(t, fx, rp.last())
			if g.ID == 0 || g.Name != in.Name || g.Platform != "openai" || g.Status != "active" || g.RateMultiplier != 1 || g.SubscriptionType != "standard" {
				t.Errorf("decoded group %+v", g)
			}

			get := loadFixture(t, v, "groups.get.ok")
			rp.add(get)
			g2, err := c.GetGroup(ctx, pathID(t, get))
			if err != nil {
				t.Fatal(err)
			}
			if g2.ID != pathID(t, get) || g2.Name == "" {
				t.Errorf("get group %+v", g2)
			}

			nf := loadFixture(t, v, "groups.get.not-found")
			rp.add(nf)
			_, err = c.GetGroup(ctx, pathID(t, nf))
			he := mustHostError(t, err, 404, "GROUP_NOT_FOUND")
			if !IsNotFound(err) || he.Message != "group not found" || he.Method != "GET" {
				t.Errorf("not found error %+v", he)
			}

			dup := loadFixture(t, v, "groups.create.duplicate-name")
			rp.add(dup)
			_, err = c.CreateGroup(ctx, CreateGroupRequest{Name: in.Name, Description: in.Description, Platform: "openai", SubscriptionType: "standard"})
			mustHostError(t, err, 409, CodeGroupExists)
			if !IsCode(err, CodeGroupExists) {
				t.Error("IsCode GROUP_EXISTS false")
			}
			// RateMultiplier 0 is sent as 1: the recorded duplicate request had rate_multiplier 1.
			assertSentAsRecorded(t, dup, rp.last())

			bad := loadFixture(t, v, "groups.create.invalid-platform")
			rp.add(bad)
			_, err = c.CreateGroup(ctx, CreateGroupRequest{Name: "x", Platform: "moonshot"})
			want := ""
			if v == "fork-0.1.321" {
				want = "INVALID_PLATFORM"
			}
			he = mustHostError(t, err, 400, want)
			if he.Message == "" {
				t.Error("bind error without message")
			}

			del := loadFixture(t, v, "groups.delete.ok")
			rp.add(del)
			if err := c.DeleteGroup(ctx, pathID(t, del)); err != nil {
				t.Fatal(err)
			}
			dnf := loadFixture(t, v, "groups.delete.not-found")
			rp.add(dnf)
			if err := c.DeleteGroup(ctx, pathID(t, dnf)); !IsNotFound(err) {
				t.Errorf("delete unknown group: %v", err)
			}
		})
	}
}

func TestGroupCreateAlwaysSendsRateMultiplier(t *testing.T) {
	// The recorded exchange shows what omitting it does on 129/179: 500 internal error.
	fx := loadFixture(t, "0.1.179", "groups.create.missing-rate-multiplier")
	if fx.Response.Status != 500 {
		t.Fatalf("fixture changed: %d", fx.Response.Status)
	}
	rp := newReplay(t, "0.1.179", "groups.create.ok")
	_, err := rp.adminClient().CreateGroup(context.Background(), CreateGroupRequest{Name: "g", Platform: "openai"})
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	if err := json.Unmarshal(rp.last().Body, &body); err != nil {
		t.Fatal(err)
	}
	if body["rate_multiplier"] != float64(1) {
		t.Errorf("rate_multiplier = %v, want 1", body["rate_multiplier"])
	}
	// And the 500 decodes with no reason.
	rp2 := newReplay(t, "0.1.129", "groups.create.missing-rate-multiplier")
	_, err = rp2.adminClient().CreateGroup(context.Background(), CreateGroupRequest{Name: "g", RateMultiplier: 1})
	he := mustHostError(t, err, 500, "")
	if he.Message != "internal error" {
		t.Errorf("message %q", he.Message)
	}
}

// pagedServer serves the items of a recorded list fixture page by page (page_size from the
// query), to check that list calls follow every page.
func pagedServer(t *testing.T, version, fixture string) (*httptest.Server, *[]string) {
	t.Helper()
	fx := loadFixture(t, version, fixture)
	var env struct {
		Data struct {
			Items []json.RawMessage `json:"items"`
		} `json:"data"`
	}
	if err := json.Unmarshal(fx.responseBody(t), &env); err != nil {
		t.Fatal(err)
	}
	// Duplicate the recorded items to get several pages.
	var items []json.RawMessage
	for i := 0; i < 3; i++ {
		items = append(items, env.Data.Items...)
	}
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		// Serve 2 items per page whatever was asked, like a host with a lower cap.
		size := 2
		pages := (len(items) + size - 1) / size
		from, to := (page-1)*size, page*size
		if from > len(items) {
			from = len(items)
		}
		if to > len(items) {
			to = len(items)
		}
		b, _ := json.Marshal(map[string]any{"code": 0, "message": "success", "data": map[string]any{
			"items": items[from:to], "total": len(items), "page": page, "page_size": size, "pages": pages}})
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv, &queries
}

func TestListGroupsFollowsPages(t *testing.T) {
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			srv, queries := pagedServer(t, v, "groups.list.ok")
			c := New(Config{AdminURL: srv.URL, AdminAPIKey: testAdminKey})
			gs, err := c.ListGroups(context.Background(), "fixture-")
			if err != nil {
				t.Fatal(err)
			}
			if len(gs) != 6 {
				t.Fatalf("got %d groups over %d requests, want 6", len(gs), len(*queries))
			}
			if len(*queries) != 3 || !strings.Contains((*queries)[0], "search=fixture-") || !strings.Contains((*queries)[0], "page_size=1000") {
				t.Errorf("queries %v", *queries)
			}
			for _, g := range gs {
				if g.ID == 0 || g.Name == "" {
					t.Errorf("undecoded group %+v", g)
				}
			}
		})
	}
}

func TestFindGroupByName(t *testing.T) {
	ctx := context.Background()
	rp := newReplay(t, "0.1.179", "groups.list.ok")
	fx := loadFixture(t, "0.1.179", "groups.list.ok")
	var env struct {
		Data struct {
			Items []Group `json:"items"`
		} `json:"data"`
	}
	if err := json.Unmarshal(fx.responseBody(t), &env); err != nil {
		t.Fatal(err)
	}
	want := env.Data.Items[1]
	g, err := rp.adminClient().FindGroupByName(ctx, want.Name)
	if err != nil {
		t.Fatal(err)
	}
	if g == nil || g.ID != want.ID {
		t.Fatalf("FindGroupByName = %+v, want id %d", g, want.ID)
	}
	if q := rp.last().Query; !strings.Contains(q, "search="+want.Name) {
		t.Errorf("query %q lacks search", q)
	}
	// A substring match is not the group.
	g, err = rp.adminClient().FindGroupByName(ctx, "fixture-")
	if err != nil || g != nil {
		t.Fatalf("substring: %+v %v, want nil nil", g, err)
	}
}
