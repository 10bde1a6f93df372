// Package metrics holds the process's Prometheus metrics on a private registry (never the
// global default one): item states and failure classes read from the database at scrape
// time, step durations observed by the job handlers, host/upstream HTTP call latency and
// status classes observed through the evidence hook, and queue depth read from asynq at
// scrape time. A process builds one set (internal/app) and hands it to whoever records. No label ever carries a secret, a URL, a key or a body: labels are fixed
// vocabularies (state, step, outcome, target, status class, failure class, queue state).
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cn-relay-manager/cn-relay-manager/internal/evidence"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// ItemSource reports database-derived numbers at scrape time.
type ItemSource interface {
	// ItemCounts returns the number of items per status.
	ItemCounts(ctx context.Context) (map[string]int, error)
	// FailureCounts returns the number of attempts per failure class (attempts are
	// append-only, so the numbers only grow).
	FailureCounts(ctx context.Context) (map[string]int, error)
}

// QueueInspector is the part of *asynq.Inspector the queue-depth collector needs.
type QueueInspector interface {
	GetQueueInfo(queue string) (*asynq.QueueInfo, error)
}

// Step outcomes as seen by the job handler.
const (
	OutcomeFinished    = "finished"    // the step ran; nothing further was scheduled
	OutcomeAdvanced    = "advanced"    // the step ran; a different step was scheduled
	OutcomeRescheduled = "rescheduled" // the step ran; the same step was scheduled again (waiting, retry)
	OutcomeError       = "error"       // the step returned an error; asynq retries the task
	OutcomeInvalid     = "invalid"     // the task payload was unusable
)

// ScrapeTimeout bounds the database and Redis reads done during one scrape.
const ScrapeTimeout = 5 * time.Second

// Metrics is one set of metric families on its own registry.
type Metrics struct {
	Registry *prometheus.Registry

	stepDuration   *prometheus.HistogramVec
	clientRequests *prometheus.CounterVec
	clientDuration *prometheus.HistogramVec

	mu     sync.RWMutex
	items  ItemSource
	queue  QueueInspector
	queues []string
}

// New returns a fresh set of metrics with Go and process collectors on a new registry.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		stepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "crm_step_duration_seconds",
			Help:    "Duration of pipeline item steps run by the job handler, by step and outcome.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"step", "outcome"}),
		clientRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crm_http_client_requests_total",
			Help: "HTTP calls made to sub2api hosts and upstream providers, by target (host, gateway, upstream) and status class (2xx..5xx, error = no answer).",
		}, []string{"target", "status_class"}),
		clientDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "crm_http_client_duration_seconds",
			Help:    "Latency of HTTP calls made to sub2api hosts and upstream providers, by target.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"target"}),
		queues: []string{"default"},
	}
	m.Registry.MustRegister(m.stepDuration, m.clientRequests, m.clientDuration, &scrapeCollector{m: m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// SetSources sets (or replaces) where the scrape-time families come from; either may be
// nil. queues lists the asynq queues to report (default: "default").
func (m *Metrics) SetSources(items ItemSource, queue QueueInspector, queues ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.items, m.queue = items, queue
	if len(queues) > 0 {
		m.queues = append([]string(nil), queues...)
	}
}

// ObserveStep records one run of an item step (or of a batch-level task). A nil set
// records nothing.
func (m *Metrics) ObserveStep(step, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.stepDuration.WithLabelValues(step, outcome).Observe(d.Seconds())
}

// ObserveExchange records one host/upstream HTTP call. Only the target, the status and
// the latency are read. Install it with evidence.SetObserver (internal/app does, once per
// process).
func (m *Metrics) ObserveExchange(e evidence.Exchange) {
	target := e.Target
	switch target {
	case "host", "gateway", "upstream":
	default:
		target = "other"
	}
	m.clientRequests.WithLabelValues(target, StatusClass(e.Status, e.Error != "")).Inc()
	d := e.Latency
	if d <= 0 {
		d = time.Duration(e.LatencyMS) * time.Millisecond
	}
	m.clientDuration.WithLabelValues(target).Observe(d.Seconds())
}

// StatusClass maps an HTTP status to "1xx".."5xx", or "error" when no answer arrived (or
// reading it failed).
func StatusClass(status int, failed bool) string {
	if status < 100 || status > 599 {
		return "error"
	}
	if failed {
		return "error"
	}
	return strconv.Itoa(status/100) + "xx"
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

var (
	itemsDesc    = prometheus.NewDesc("crm_items", "Items by state, read from the database at scrape time.", []string{"state"}, nil)
	failuresDesc = prometheus.NewDesc("crm_failures_total", "Step attempts that recorded a failure class, by class, read from the database at scrape time.", []string{"class"}, nil)
	queueDesc    = prometheus.NewDesc("crm_queue_depth", "Tasks in the asynq queue by task state, read from Redis at scrape time.", []string{"queue", "state"}, nil)
	sourceUpDesc = prometheus.NewDesc("crm_scrape_source_up", "1 when the scrape-time read of a source (store, queue) succeeded, else 0.", []string{"source"}, nil)
)

// AllItemStates is every item status, reported even when no item is in it.
var AllItemStates = []string{store.ItemSubmitted, store.ItemProbing, store.ItemImporting, store.ItemConfirming,
	store.ItemClosingAccess, store.ItemVerifying, store.ItemReady, store.ItemReadyWithWarnings, store.ItemFailed,
	store.ItemSkipped, store.ItemCancelled, store.ItemRolledBack}

// scrapeCollector reads the database and the queue when Prometheus scrapes.
type scrapeCollector struct{ m *Metrics }

func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- itemsDesc
	ch <- failuresDesc
	ch <- queueDesc
	ch <- sourceUpDesc
}

func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.RLock()
	items, queue, queues := c.m.items, c.m.queue, c.m.queues
	c.m.mu.RUnlock()
	if items != nil {
		ctx, cancel := context.WithTimeout(context.Background(), ScrapeTimeout)
		defer cancel()
		up := 1.0
		if counts, err := items.ItemCounts(ctx); err != nil {
			up = 0
		} else {
			seen := map[string]bool{}
			for _, s := range AllItemStates {
				seen[s] = true
				ch <- prometheus.MustNewConstMetric(itemsDesc, prometheus.GaugeValue, float64(counts[s]), s)
			}
			for s, n := range counts {
				if !seen[s] {
					ch <- prometheus.MustNewConstMetric(itemsDesc, prometheus.GaugeValue, float64(n), s)
				}
			}
		}
		if counts, err := items.FailureCounts(ctx); err != nil {
			up = 0
		} else {
			for class, n := range counts {
				ch <- prometheus.MustNewConstMetric(failuresDesc, prometheus.CounterValue, float64(n), class)
			}
		}
		ch <- prometheus.MustNewConstMetric(sourceUpDesc, prometheus.GaugeValue, up, "store")
	}
	if queue != nil {
		up := 1.0
		for _, q := range queues {
			info, err := queue.GetQueueInfo(q)
			if err != nil {
				// A queue nobody has written to yet does not exist in Redis: report zeros.
				if isQueueNotFound(err) {
					info = &asynq.QueueInfo{Queue: q}
				} else {
					up = 0
					continue
				}
			}
			for _, kv := range []struct {
				state string
				n     int
			}{{"pending", info.Pending}, {"active", info.Active}, {"scheduled", info.Scheduled}, {"retry", info.Retry},
				{"archived", info.Archived}, {"completed", info.Completed}, {"aggregating", info.Aggregating}} {
				ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(kv.n), q, kv.state)
			}
		}
		ch <- prometheus.MustNewConstMetric(sourceUpDesc, prometheus.GaugeValue, up, "queue")
	}
}
