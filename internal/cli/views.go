package cli

import (
	"context"
	"encoding/json"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/apiclient"
)

// API views: only the fields the CLI shows (JSON names from internal/store); the calls
// are internal/apiclient's.

type hostView struct {
	ID             string          `json:"id"`
	Name           string          `json:"name"`
	AdminURL       string          `json:"admin_url"`
	PublicURL      string          `json:"public_url"`
	AuthKind       string          `json:"auth_kind"`
	AdminKeyMasked string          `json:"admin_key_masked"`
	AdminEmail     string          `json:"admin_email"`
	Version        string          `json:"version"`
	Profile        string          `json:"profile"`
	Status         string          `json:"status"`
	StatusMessage  string          `json:"status_message"`
	Warnings       []string        `json:"warnings"`
	Flags          map[string]bool `json:"flags"`
	ProbedAt       *time.Time      `json:"probed_at"`
	CreatedAt      time.Time       `json:"created_at"`
}

type batchOptions struct {
	WindowDeadlineS float64   `json:"window_deadline_s"`
	WindowScheduleS []float64 `json:"window_schedule_s"`
}

type batchView struct {
	ID         string         `json:"id"`
	HostID     string         `json:"host_id"`
	Name       string         `json:"name"`
	Mode       string         `json:"mode"`
	DryRun     bool           `json:"dry_run"`
	Force      bool           `json:"force"`
	Options    batchOptions   `json:"options"`
	Status     string         `json:"status"`
	ItemCount  int            `json:"item_count"`
	Counts     map[string]int `json:"counts"`
	CreatedAt  time.Time      `json:"created_at"`
	FinishedAt *time.Time     `json:"finished_at"`
	LastAction actionView     `json:"last_action"`
	Groups     []groupView    `json:"groups"`
}

// groupView is one host group of a batch: created, reused or the operator's existing one.
type groupView struct {
	Name    string `json:"name"`
	Action  string `json:"action"`
	Items   int    `json:"items"`
	Ready   int    `json:"ready"`
	Planned bool   `json:"planned"`
}

// actionView is the outcome of the batch's last rollback (or other batch-level operation).
type actionView struct {
	Kind    string `json:"kind"`
	Status  string `json:"status"`
	Message string `json:"message"`
	Objects []struct {
		ResourceType   string `json:"resource_type"`
		HostResourceID string `json:"host_resource_id"`
		Name           string `json:"name"`
		Result         string `json:"result"`
		Detail         string `json:"detail"`
	} `json:"objects"`
	Finished *time.Time `json:"finished_at"`
}

type reconcileRunView struct {
	ID             string `json:"id"`
	Status         string `json:"status"`
	Summary        string `json:"summary"`
	ObjectsChecked int    `json:"objects_checked"`
	ObjectsTotal   int    `json:"objects_total"`
	Findings       []struct {
		Kind           string `json:"kind"`
		ResourceType   string `json:"resource_type"`
		HostResourceID string `json:"host_resource_id"`
		Name           string `json:"name"`
		Detail         string `json:"detail"`
	} `json:"findings"`
	FinishedAt *time.Time `json:"finished_at"`
}

type correction struct {
	Requested string `json:"requested"`
	Resolved  string `json:"resolved"`
	Method    string `json:"method"`
	Note      string `json:"note"`
}

type itemView struct {
	ID              string         `json:"id"`
	BatchID         string         `json:"batch_id"`
	Index           int            `json:"index"`
	Name            string         `json:"name"`
	BaseURL         string         `json:"base_url"`
	NormalizedURL   string         `json:"normalized_url"`
	AnthropicBase   string         `json:"anthropic_base_url"`
	ProviderHint    string         `json:"provider_hint"`
	Provider        string         `json:"provider"`
	DetectedBy      string         `json:"detected_by"`
	Suggested       string         `json:"suggested_provider"`
	KeyMasked       string         `json:"key_masked"`
	RequestedModels []string       `json:"requested_models"`
	Corrections     []correction   `json:"corrections"`
	Models          []string       `json:"models"`
	SmokeModel      string         `json:"smoke_model"`
	Capability      map[string]any `json:"capability"`
	Status          string         `json:"status"`
	Step            string         `json:"step"`
	Seq             int            `json:"seq"`
	NextRunAt       *time.Time     `json:"next_run_at"`
	WindowDeadline  *time.Time     `json:"window_deadline"`
	FailureClass    string         `json:"failure_class"`
	FailureMessage  string         `json:"failure_message"`
	Warnings        []string       `json:"warnings"`
	AccountStatus   string         `json:"account_status"`
	AccessStatus    string         `json:"access_status"`
	SmokePreview    string         `json:"smoke_preview"`
	DuplicateOf     string         `json:"duplicate_of"`
	Attempts        int            `json:"attempts"`
	CreatedAt       time.Time      `json:"created_at"`
	FinishedAt      *time.Time     `json:"finished_at"`
}

type exchange struct {
	Target    string    `json:"target"`
	Method    string    `json:"method"`
	Path      string    `json:"path"`
	Status    int       `json:"status"`
	LatencyMS int64     `json:"latency_ms"`
	Preview   string    `json:"preview"`
	Error     string    `json:"error"`
	At        time.Time `json:"at"`
}

type attemptView struct {
	Step         string     `json:"step"`
	Seq          int        `json:"seq"`
	Number       int        `json:"number"`
	Outcome      string     `json:"outcome"`
	Message      string     `json:"message"`
	FailureClass string     `json:"failure_class"`
	Evidence     []exchange `json:"evidence"`
	StartedAt    time.Time  `json:"started_at"`
	FinishedAt   time.Time  `json:"finished_at"`
}

func getBatch(ctx context.Context, c *apiclient.Client, id string) (batchView, json.RawMessage, error) {
	var b batchView
	raw, err := c.GetBatch(ctx, id, &b)
	return b, raw, err
}

func listHosts(ctx context.Context, c *apiclient.Client) ([]hostView, json.RawMessage, error) {
	var p struct {
		Items []hostView `json:"items"`
	}
	raw, err := c.ListHosts(ctx, &p)
	return p.Items, raw, err
}

// hostName is the name of the host with this ID, or the ID when the hosts cannot be
// listed (or the host is gone).
func (e *env) hostName(id string) string {
	hosts, _, err := listHosts(e.ctx, e.client)
	if err == nil {
		for _, h := range hosts {
			if h.ID == id {
				return h.Name
			}
		}
	}
	return id
}
