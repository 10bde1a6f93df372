package metrics

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

type fakeAccounts struct{}

func (fakeAccounts) ListHosts(context.Context) ([]store.Host, error) {
	return []store.Host{{ID: "h1", Name: "prod"}, {ID: "h2", Name: "staging"}}, nil
}
func (fakeAccounts) AccountHealthCounts(context.Context) (map[string]map[string]int, error) {
	return map[string]map[string]int{"h1": {"healthy": 5, "failing": 2}}, nil
}
func (fakeAccounts) OutboxCounts(context.Context) (map[string]int, error) {
	return map[string]int{"delivered": 7, "pending": 1}, nil
}

// Account health gauges per host and health, zeros included, and deliveries per state.
func TestAccountHealthGauges(t *testing.T) {
	m := New()
	m.WatchAccounts(fakeAccounts{})
	m.WatchAccounts(fakeAccounts{}) // a second HTTP surface of the same process
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`crm_accounts{health="healthy",host="prod"} 5`, `crm_accounts{health="failing",host="prod"} 2`,
		`crm_accounts{health="degraded",host="prod"} 0`, `crm_accounts{health="failing",host="staging"} 0`,
		`crm_notifications{state="delivered"} 7`, `crm_notifications{state="failed"} 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("no %s in\n%s", want, body)
		}
	}
}
