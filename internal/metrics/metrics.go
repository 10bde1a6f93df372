// Package metrics holds the process's Prometheus metrics on a private registry (never the
// global default one). State counts are gauges read from the database at scrape time
// (items by state, by provider, by host, failed items by class); events are counters
// recorded as they happen (step results and failures, API and page requests, host and
// upstream calls); step and request durations are histograms; queue depth is read from
// asynq at scrape time. A process builds one set (internal/app) and hands it to whoever
// records. No label ever carries a secret, a URL path with IDs, a key or a body: labels
// are fixed vocabularies (state, step, outcome, target, status class, failure class,
// queue state, route pattern, method), the catalog's provider IDs (anything else is
// "other") and the names of at most MaxHosts registered hosts (the rest are "other").
package metrics

import (
	"context"
	"net/http"
	"sort"
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
	// ItemBreakdown counts items by host name, provider, status and failure class.
	ItemBreakdown(ctx context.Context) ([]store.ItemGroup, error)
}

// QueueInspector is the part of *asynq.Inspector the queue-depth collector needs.
type QueueInspector interface {
	GetQueueInfo(queue string) (*asynq.QueueInfo, error)
}

// MaxHosts bounds the host label: the first MaxHosts host names (sorted) are themselves,
// any further one is "other". Hosts are few; the bound keeps a mistake from exploding the
// series count.
const MaxHosts = 50

// Step outcomes as seen by the job handler.
const (
	OutcomeFinished    = "finished"    // the step ran; nothing further was scheduled
	OutcomeAdvanced    = "advanced"    // the step ran; a different step was scheduled
	OutcomeRescheduled = "rescheduled" // the step ran; the same step was scheduled again (waiting, retry)
	OutcomeError       = "error"       // the step returned an error; asynq retries the task
	OutcomeDeferred    = "deferred"    // a concurrency cap was full: the step did not run and gave its slot back
	OutcomeInvalid     = "invalid"     // the task payload was unusable
)

// ScrapeTimeout bounds the database and Redis reads done during one scrape.
const ScrapeTimeout = 5 * time.Second

// Metrics is one set of metric families on its own registry.
type Metrics struct {
	Registry *prometheus.Registry

	stepDuration   *prometheus.HistogramVec
	stepResults    *prometheus.CounterVec
	stepFailures   *prometheus.CounterVec
	clientRequests *prometheus.CounterVec
	clientDuration *prometheus.HistogramVec
	httpRequests   *prometheus.CounterVec
	httpDuration   *prometheus.HistogramVec

	mu        sync.RWMutex
	items     ItemSource
	queue     QueueInspector
	queues    []string
	providers map[string]bool // the catalog's provider IDs; nil: every provider is "other"
	hosts     map[string]bool // host names given a label of their own (at most MaxHosts)
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
		stepResults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crm_step_results_total",
			Help: "Item step attempts recorded, by step, attempt outcome (ok, waiting, retry, advisory, failed) and provider.",
		}, []string{"step", "outcome", "provider"}),
		stepFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crm_step_failures_total",
			Help: "Item step attempts that recorded a failure class, by class, provider and host.",
		}, []string{"class", "provider", "host"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crm_http_requests_total",
			Help: "Requests served (REST API, pages, monitoring), by method, route pattern (unmatched: no route) and status class.",
		}, []string{"method", "route", "status_class"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "crm_http_request_duration_seconds",
			Help:    "Time to serve a request, by method and route pattern.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route"}),
		queues: []string{"default"},
		hosts:  map[string]bool{},
	}
	m.Registry.MustRegister(m.stepDuration, m.stepResults, m.stepFailures, m.clientRequests, m.clientDuration,
		m.httpRequests, m.httpDuration, &scrapeCollector{m: m},
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

// SetProviders names the providers that get a label of their own (the catalog's IDs);
// any other provider is counted as "other", an undetected one as "unknown".
func (m *Metrics) SetProviders(ids []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.providers = make(map[string]bool, len(ids))
	for _, id := range ids {
		m.providers[id] = true
	}
}

// provider is the bounded provider label.
func (m *Metrics) provider(p string) string {
	if p == "" {
		return "unknown"
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.providers[p] {
		return p
	}
	return "other"
}

// host is the bounded host label of a counter: a name keeps its own label once given one,
// new names get one while fewer than MaxHosts have.
func (m *Metrics) host(name string) string {
	if name == "" {
		return "unknown"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.hosts[name] {
		return name
	}
	if len(m.hosts) < MaxHosts {
		m.hosts[name] = true
		return name
	}
	return "other"
}

// ObserveStepResult records the attempt one item step recorded: its outcome, and its
// failure class when it failed. A nil set records nothing.
func (m *Metrics) ObserveStepResult(step, outcome, class, provider, host string) {
	if m == nil {
		return
	}
	prov := m.provider(provider)
	m.stepResults.WithLabelValues(step, outcome, prov).Inc()
	if class != "" {
		m.stepFailures.WithLabelValues(class, prov, m.host(host)).Inc()
	}
}

// ObserveRequest records one served request. route is the matched route pattern
// (/api/v1/batches/:id), never the path; "" counts as unmatched.
func (m *Metrics) ObserveRequest(method, route string, status int, d time.Duration) {
	if m == nil {
		return
	}
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
	default:
		method = "other"
	}
	if route == "" {
		route = "unmatched"
	}
	m.httpRequests.WithLabelValues(method, route, StatusClass(status, false)).Inc()
	m.httpDuration.WithLabelValues(method, route).Observe(d.Seconds())
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
	itemsDesc           = prometheus.NewDesc("crm_items", "Items by state, read from the database at scrape time.", []string{"state"}, nil)
	itemsByProviderDesc = prometheus.NewDesc("crm_items_by_provider", "Items by provider and state, read from the database at scrape time (only combinations that hold items).", []string{"provider", "state"}, nil)
	itemsByHostDesc     = prometheus.NewDesc("crm_items_by_host", "Items by host name and state, read from the database at scrape time (only combinations that hold items).", []string{"host", "state"}, nil)
	failedItemsDesc     = prometheus.NewDesc("crm_failed_items", "Items now failed, by failure class and provider, read from the database at scrape time.", []string{"class", "provider"}, nil)
	queueDesc           = prometheus.NewDesc("crm_queue_depth", "Tasks in the asynq queue by task state, read from Redis at scrape time.", []string{"queue", "state"}, nil)
	sourceUpDesc        = prometheus.NewDesc("crm_scrape_source_up", "1 when the scrape-time read of a source (store, queue) succeeded, else 0.", []string{"source"}, nil)
)

// AllItemStates is every item status, reported even when no item is in it.
var AllItemStates = []string{store.ItemSubmitted, store.ItemProbing, store.ItemImporting, store.ItemConfirming,
	store.ItemClosingAccess, store.ItemVerifying, store.ItemReady, store.ItemReadyWithWarnings, store.ItemFailed,
	store.ItemSkipped, store.ItemCancelled, store.ItemRolledBack}

// scrapeCollector reads the database and the queue when Prometheus scrapes.
type scrapeCollector struct{ m *Metrics }

func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- itemsDesc
	ch <- itemsByProviderDesc
	ch <- itemsByHostDesc
	ch <- failedItemsDesc
	ch <- queueDesc
	ch <- sourceUpDesc
}

type pair struct{ a, b string }

func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.RLock()
	items, queue, queues := c.m.items, c.m.queue, c.m.queues
	c.m.mu.RUnlock()
	if items != nil {
		ctx, cancel := context.WithTimeout(context.Background(), ScrapeTimeout)
		defer cancel()
		up := 1.0
		if groups, err := items.ItemBreakdown(ctx); err != nil {
			up = 0
		} else {
			c.collectItems(ch, groups)
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

// collectItems turns the breakdown into the state gauges, with bounded labels.
func (c *scrapeCollector) collectItems(ch chan<- prometheus.Metric, groups []store.ItemGroup) {
	names := map[string]bool{}
	for _, g := range groups {
		names[g.Host] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	own := map[string]bool{}
	for i, n := range sorted {
		own[n] = i < MaxHosts
	}
	byState, byProvider, byHost, failed := map[string]int{}, map[pair]int{}, map[pair]int{}, map[pair]int{}
	for _, g := range groups {
		prov, host := c.m.provider(g.Provider), g.Host
		if !own[host] {
			host = "other"
		}
		byState[g.Status] += g.N
		byProvider[pair{prov, g.Status}] += g.N
		byHost[pair{host, g.Status}] += g.N
		if g.Status == store.ItemFailed && g.Class != "" {
			failed[pair{g.Class, prov}] += g.N
		}
	}
	seen := map[string]bool{}
	for _, s := range AllItemStates {
		seen[s] = true
		ch <- prometheus.MustNewConstMetric(itemsDesc, prometheus.GaugeValue, float64(byState[s]), s)
	}
	for s, n := range byState {
		if !seen[s] {
			ch <- prometheus.MustNewConstMetric(itemsDesc, prometheus.GaugeValue, float64(n), s)
		}
	}
	for k, n := range byProvider {
		ch <- prometheus.MustNewConstMetric(itemsByProviderDesc, prometheus.GaugeValue, float64(n), k.a, k.b)
	}
	for k, n := range byHost {
		ch <- prometheus.MustNewConstMetric(itemsByHostDesc, prometheus.GaugeValue, float64(n), k.a, k.b)
	}
	for k, n := range failed {
		ch <- prometheus.MustNewConstMetric(failedItemsDesc, prometheus.GaugeValue, float64(n), k.a, k.b)
	}
}
