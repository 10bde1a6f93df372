package metrics

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// AccountSource reports the health of the imported accounts and the notification
// deliveries at scrape time; *store.Store satisfies it.
type AccountSource interface {
	ListHosts(ctx context.Context) ([]store.Host, error)
	// AccountHealthCounts returns, per host ID, the number of accounts in each status.
	AccountHealthCounts(ctx context.Context) (map[string]map[string]int, error)
	// OutboxCounts returns the number of deliveries in each state.
	OutboxCounts(ctx context.Context) (map[string]int, error)
}

var (
	accountsDesc = prometheus.NewDesc("crm_accounts",
		"Imported accounts by host (its registered name) and latest health (healthy, degraded, failing), read from the database at scrape time.",
		[]string{"host", "health"}, nil)
	notificationsDesc = prometheus.NewDesc("crm_notifications",
		"Notification deliveries by state (pending, delivered, failed), read from the database at scrape time.",
		[]string{"state"}, nil)
)

// healthStates and outboxStates are reported even when zero; the labels are fixed
// vocabularies (the host label is bounded by the registered hosts).
var (
	healthStates = []string{store.HealthHealthy, store.HealthDegraded, store.HealthFailing}
	outboxStates = []string{store.OutboxPending, store.OutboxDelivered, store.OutboxFailed}
)

// WatchAccounts adds the account health and notification families, read from src at
// scrape time; a second call keeps the first source.
func (m *Metrics) WatchAccounts(src AccountSource) {
	var already prometheus.AlreadyRegisteredError
	if err := m.Registry.Register(&accountsCollector{src: src}); err != nil && !errors.As(err, &already) {
		panic(err)
	}
}

type accountsCollector struct{ src AccountSource }

func (c *accountsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- accountsDesc
	ch <- notificationsDesc
}

func (c *accountsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), ScrapeTimeout)
	defer cancel()
	if hosts, err := c.src.ListHosts(ctx); err == nil {
		if counts, err := c.src.AccountHealthCounts(ctx); err == nil {
			for _, h := range hosts {
				for _, s := range healthStates {
					ch <- prometheus.MustNewConstMetric(accountsDesc, prometheus.GaugeValue, float64(counts[h.ID][s]), h.Name, s)
				}
			}
		}
	}
	if counts, err := c.src.OutboxCounts(ctx); err == nil {
		for _, s := range outboxStates {
			ch <- prometheus.MustNewConstMetric(notificationsDesc, prometheus.GaugeValue, float64(counts[s]), s)
		}
	}
}
