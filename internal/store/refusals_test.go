package store

import (
	"context"
	"reflect"
	"testing"
	"time"
)

func TestFailedURLs(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		h := &Host{Name: "h", AdminURL: "http://a", AuthKind: "api_key"}
		if err := s.CreateHost(ctx, h); err != nil {
			t.Fatal(err)
		}
		b := &Batch{HostID: h.ID, Mode: "self_service"}
		var items []*Item
		for i := 0; i < 4; i++ {
			items = append(items, &Item{Name: "i", BaseURL: "http://u", APIKeyEnc: "v1:x", KeyMasked: "k", KeyFingerprint: "fp"})
		}
		if err := s.CreateBatch(ctx, b, items); err != nil {
			t.Fatal(err)
		}
		old := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		recent := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
		set := func(it *Item, status, class, url string, at time.Time) {
			if _, err := s.DB.NewUpdate().Model((*Item)(nil)).Set("status = ?", status).Set("failure_class = ?", class).
				Set("normalized_url = ?", url).Set("updated_at = ?", at).Where("id = ?", it.ID).Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}
		set(items[0], ItemFailed, "host_policy", "http://127.0.0.1:9/deepseek", recent)
		set(items[1], ItemFailed, "host_policy", "http://127.0.0.1:9/deepseek", recent) // same URL: listed once
		set(items[2], ItemFailed, "host_policy", "https://api.moonshot.cn/v1", old)
		set(items[3], ItemFailed, "invalid_key", "https://api.deepseek.com", recent)
		got, err := s.FailedURLs(ctx, h.ID, "host_policy", time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"http://127.0.0.1:9/deepseek", "https://api.moonshot.cn/v1"}; !sameSet(got, want) {
			t.Fatalf("FailedURLs = %v, want %v", got, want)
		}
		got, err = s.FailedURLs(ctx, h.ID, "host_policy", recent.Add(-time.Hour))
		if err != nil || !reflect.DeepEqual(got, []string{"http://127.0.0.1:9/deepseek"}) {
			t.Fatalf("FailedURLs since = %v %v", got, err)
		}
	})
}

func sameSet(a, b []string) bool {
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return len(a) == len(b)
}
