package store

import (
	"time"

	"github.com/uptrace/bun"
)

// Item statuses. The terminal ones are product §4's terminal item states.
const (
	ItemSubmitted         = "submitted"
	ItemProbing           = "probing"
	ItemImporting         = "importing"
	ItemConfirming        = "confirming"
	ItemClosingAccess     = "closing_access"
	ItemVerifying         = "verifying"
	ItemReady             = "ready"
	ItemReadyWithWarnings = "ready_with_warnings"
	ItemFailed            = "failed"
	ItemSkipped           = "skipped"
	ItemCancelled         = "cancelled"
	ItemRolledBack        = "rolled_back"
)

// TerminalItemStatuses lists the states an item never leaves on its own.
var TerminalItemStatuses = []string{ItemReady, ItemReadyWithWarnings, ItemFailed, ItemSkipped, ItemCancelled, ItemRolledBack}

// IsTerminal reports whether status is terminal.
func IsTerminal(status string) bool {
	for _, s := range TerminalItemStatuses {
		if s == status {
			return true
		}
	}
	return false
}

// Batch statuses, derived from the items (product §4).
const (
	BatchQueued             = "queued"
	BatchRunning            = "running"
	BatchSucceeded          = "succeeded"
	BatchPartiallySucceeded = "partially_succeeded"
	BatchFailed             = "failed"
	BatchCancelled          = "cancelled"
	BatchRolledBack         = "rolled_back"
)

// Host is a registered sub2api instance. Credentials are stored sealed.
type Host struct {
	bun.BaseModel `bun:"table:hosts"`

	ID               string            `bun:"id,pk" json:"id"`
	Name             string            `bun:"name" json:"name"`
	AdminURL         string            `bun:"admin_url" json:"admin_url"`
	PublicURL        string            `bun:"public_url" json:"public_url"`
	AuthKind         string            `bun:"auth_kind" json:"auth_kind"` // "api_key" or "password"
	AdminKeyEnc      string            `bun:"admin_key_enc" json:"-"`
	AdminKeyMasked   string            `bun:"admin_key_masked" json:"admin_key_masked,omitempty"`
	AdminEmail       string            `bun:"admin_email" json:"admin_email,omitempty"`
	AdminPasswordEnc string            `bun:"admin_password_enc" json:"-"`
	Version          string            `bun:"version" json:"version"`
	Profile          string            `bun:"profile" json:"profile"`
	Status           string            `bun:"status" json:"status"`
	StatusMessage    string            `bun:"status_message" json:"status_message,omitempty"`
	Warnings         []string          `bun:"warnings,type:text" json:"warnings"`
	Flags            map[string]bool   `bun:"flags,type:text" json:"flags"`
	ProbedAt         *time.Time        `bun:"probed_at" json:"probed_at,omitempty"`
	CreatedAt        time.Time         `bun:"created_at" json:"created_at"`
	UpdatedAt        time.Time         `bun:"updated_at" json:"updated_at"`
	Extra            map[string]string `bun:"-" json:"-"`
}

// BatchOptions are the per-batch knobs, stored as JSON.
type BatchOptions struct {
	WindowDeadlineS float64   `json:"window_deadline_s"`
	WindowScheduleS []float64 `json:"window_schedule_s"`
	TopUpAmount     float64   `json:"topup_amount,omitempty"`
	ValidityDays    int       `json:"validity_days,omitempty"`
	// TargetGroup says which host groups the batch's accounts join. Batches stored
	// before it existed have none and keep their per-item groups (GroupMode).
	TargetGroup TargetGroup `json:"target_group"`
	// Account holds the scheduling settings of every account the batch creates.
	Account AccountSettings `json:"account"`
}

// Target group modes (BatchOptions.TargetGroup.Mode).
const (
	// GroupPerProvider pools every key of one (provider, region, plan, access mode) into
	// one group named predictably (deepseek, kimi-coding, …), created once and reused by
	// every later batch: the group end users pay for.
	GroupPerProvider = "per_provider"
	// GroupExisting adds the accounts to a group the operator already has (by name or
	// ID); the group is never created, changed or deleted by this product.
	GroupExisting = "existing"
	// GroupPerItem gives every item its own group (isolation; the first release's
	// behaviour).
	GroupPerItem = "per_item"
)

// TargetGroup is a batch's choice of host group.
type TargetGroup struct {
	Mode   string `json:"mode,omitempty"`
	Name   string `json:"name,omitempty"`   // existing: the group's name
	ID     int64  `json:"id,omitempty"`     // existing: the group's host ID
	Prefix string `json:"prefix,omitempty"` // per_provider: prepended to the group name
}

// GroupMode returns the batch's target mode; a batch stored before target groups
// existed was imported one group per item and stays so (a retry must not move it).
func (o BatchOptions) GroupMode() string {
	if o.TargetGroup.Mode == "" {
		return GroupPerItem
	}
	return o.TargetGroup.Mode
}

// AccountSettings are the scheduling settings of the accounts a batch creates; nil means
// the product's default (priority 1, concurrency 5, the host's default weight).
type AccountSettings struct {
	Priority    *int `json:"priority,omitempty"`    // lower is preferred by the host's scheduler
	Concurrency *int `json:"concurrency,omitempty"` // concurrent requests per account (0 = unlimited)
	Weight      *int `json:"weight,omitempty"`      // the host's load_factor (share of traffic)
}

// Batch is one submission.
type Batch struct {
	bun.BaseModel `bun:"table:batches"`

	ID         string       `bun:"id,pk" json:"id"`
	HostID     string       `bun:"host_id" json:"host_id"`
	Name       string       `bun:"name" json:"name,omitempty"`
	Mode       string       `bun:"mode" json:"mode"`
	DryRun     bool         `bun:"dry_run" json:"dry_run"`
	Force      bool         `bun:"force" json:"force"`
	Options    BatchOptions `bun:"options,type:text" json:"options"`
	Status     string       `bun:"status" json:"status"`
	ItemCount  int          `bun:"item_count" json:"item_count"`
	CreatedAt  time.Time    `bun:"created_at" json:"created_at"`
	UpdatedAt  time.Time    `bun:"updated_at" json:"updated_at"`
	FinishedAt *time.Time   `bun:"finished_at" json:"finished_at,omitempty"`
	LastAction Action       `bun:"last_action,type:text" json:"last_action"`
	// IdempotencyKey is the submitter's Idempotency-Key: the same key on the same host
	// returns this batch instead of creating another.
	IdempotencyKey *string `bun:"idempotency_key" json:"idempotency_key,omitempty"`
}

// Action is the outcome of the last batch-level operation (rollback, reconcile).
type Action struct {
	Kind     string         `json:"kind,omitempty"` // "rollback"
	Status   string         `json:"status,omitempty"`
	Message  string         `json:"message,omitempty"`
	Objects  []ActionObject `json:"objects,omitempty"`
	Finished *time.Time     `json:"finished_at,omitempty"`
}

// ActionObject is what an operation did to one ledger object.
type ActionObject struct {
	ResourceType   string `json:"resource_type"`
	HostResourceID string `json:"host_resource_id"`
	Name           string `json:"name"`
	Result         string `json:"result"` // deleted, already_gone, kept, failed
	Detail         string `json:"detail,omitempty"`
}

// Correction records how one requested model name was resolved.
type Correction struct {
	Requested string `json:"requested"`
	Resolved  string `json:"resolved"`
	Method    string `json:"method"`
	Note      string `json:"note,omitempty"` // why a name was left out, when the catalog knows
}

// Item is one (base URL, key) input and its progress through the pipeline.
type Item struct {
	bun.BaseModel `bun:"table:items"`

	ID              string         `bun:"id,pk" json:"id"`
	BatchID         string         `bun:"batch_id" json:"batch_id"`
	HostID          string         `bun:"host_id" json:"host_id"`
	Idx             int            `bun:"idx" json:"index"`
	Name            string         `bun:"name" json:"name"`
	BaseURL         string         `bun:"base_url" json:"base_url"`
	NormalizedURL   string         `bun:"normalized_url" json:"normalized_url,omitempty"`
	ProviderHint    string         `bun:"provider_hint" json:"provider_hint,omitempty"`
	Provider        string         `bun:"provider" json:"provider,omitempty"`
	APIKeyEnc       string         `bun:"api_key_enc" json:"-"`
	KeyMasked       string         `bun:"key_masked" json:"key_masked"`
	KeyFingerprint  string         `bun:"key_fingerprint" json:"-"`
	RequestedModels []string       `bun:"requested_models,type:text" json:"requested_models"`
	Corrections     []Correction   `bun:"corrections,type:text" json:"corrections"`
	Models          []string       `bun:"models,type:text" json:"models"`
	SmokeModel      string         `bun:"smoke_model" json:"smoke_model,omitempty"`
	Capability      map[string]any `bun:"capability,type:text" json:"capability,omitempty"`
	Plan            map[string]any `bun:"plan,type:text" json:"plan,omitempty"`
	Status          string         `bun:"status" json:"status"`
	Step            string         `bun:"step" json:"step,omitempty"`
	Seq             int            `bun:"seq" json:"seq"`
	StepAttempts    int            `bun:"step_attempts" json:"step_attempts"`
	StepRetries     int            `bun:"step_retries" json:"step_retries"` // transient-error retries in the current step
	NextRunAt       *time.Time     `bun:"next_run_at" json:"next_run_at,omitempty"`
	WindowDeadline  *time.Time     `bun:"window_deadline" json:"window_deadline,omitempty"`
	FailureClass    string         `bun:"failure_class" json:"failure_class,omitempty"`
	FailureMessage  string         `bun:"failure_message" json:"failure_message,omitempty"`
	Warnings        []string       `bun:"warnings,type:text" json:"warnings"`
	AccountStatus   string         `bun:"account_status" json:"account_status,omitempty"`
	AccessStatus    string         `bun:"access_status" json:"access_status,omitempty"`
	SmokePreview    string         `bun:"smoke_preview" json:"smoke_preview,omitempty"`
	DuplicateOf     string         `bun:"duplicate_of" json:"duplicate_of,omitempty"`
	AttemptCount    int            `bun:"attempt_count" json:"attempts"`
	CreatedAt       time.Time      `bun:"created_at" json:"created_at"`
	UpdatedAt       time.Time      `bun:"updated_at" json:"updated_at"`
	FinishedAt      *time.Time     `bun:"finished_at" json:"finished_at,omitempty"`

	// AnthropicBaseURL is the Anthropic-compatible base kept beside NormalizedURL, which is
	// always the OpenAI-compatible base (a pasted Anthropic base is mapped to the OpenAI
	// base of the same region and plan); "" when the provider documents none.
	AnthropicBaseURL string `bun:"anthropic_base_url" json:"anthropic_base_url,omitempty"`
	// DetectedBy says what decided Provider: host, hint, key_hint or default.
	DetectedBy string `bun:"detected_by" json:"detected_by,omitempty"`
	// SuggestedProvider is the provider the key's shape points at when it did not decide
	// (an unknown host, a hint, or a strong key shape that contradicts the host). It is
	// shown to the operator and never used as the provider.
	SuggestedProvider string `bun:"suggested_provider" json:"suggested_provider,omitempty"`
	// TargetGroup is the name of the host group the item's account joins, decided by the
	// import step from the batch's target group and the detected provider.
	TargetGroup string `bun:"target_group" json:"target_group,omitempty"`
	// KeyProof says how the item's own account was proven to answer, not just its group:
	// KeyProofAccountTest, KeyProofGatewayAlias or KeyProofSoleAccount; "" until proven.
	KeyProof string `bun:"key_proof" json:"key_proof,omitempty"`
}

// Attempt is one execution of one step for one item.
type Attempt struct {
	bun.BaseModel `bun:"table:attempts"`

	ID           string     `bun:"id,pk" json:"id"`
	ItemID       string     `bun:"item_id" json:"item_id"`
	Step         string     `bun:"step" json:"step"`
	Seq          int        `bun:"seq" json:"seq"`
	Number       int        `bun:"number" json:"number"`
	Outcome      string     `bun:"outcome" json:"outcome"`
	Message      string     `bun:"message" json:"message,omitempty"`
	FailureClass string     `bun:"failure_class" json:"failure_class,omitempty"`
	Evidence     []Exchange `bun:"evidence,type:text" json:"evidence"`
	StartedAt    time.Time  `bun:"started_at" json:"started_at"`
	FinishedAt   time.Time  `bun:"finished_at" json:"finished_at"`
}

// Exchange is one stored piece of HTTP evidence (already redacted).
type Exchange struct {
	Target    string    `json:"target"`
	Method    string    `json:"method"`
	Path      string    `json:"path"`
	Status    int       `json:"status"`
	LatencyMS int64     `json:"latency_ms"`
	Preview   string    `json:"preview,omitempty"`
	Error     string    `json:"error,omitempty"`
	At        time.Time `json:"at"`
}

// How an item's own account was proven (Item.KeyProof).
const (
	// KeyProofAccountTest: the host's own account test of that account passed, on a host
	// version whose test takes the same chat path as traffic.
	KeyProofAccountTest = "account_test"
	// KeyProofGatewayAlias: an end-user call through the gateway with a model alias that
	// only this account's mapping carried (added for the call, removed after it).
	KeyProofGatewayAlias = "gateway_alias"
	// KeyProofSoleAccount: the end-user call through a group whose only account it is.
	KeyProofSoleAccount = "sole_account"
)

// Attempt outcomes (product §4.2).
const (
	OutcomeOK       = "ok"
	OutcomeWaiting  = "waiting"
	OutcomeRetry    = "retry"
	OutcomeAdvisory = "advisory"
	OutcomeFailed   = "failed"
)

// Resource states in the ledger.
const (
	ResourceIntent  = "intent"  // about to be created; host id unknown yet
	ResourceCreated = "created" // exists on the host as far as we know
	ResourceAdopted = "adopted" // found on the host (created by us earlier, or shared), not created by this row's batch
	// ResourceDeleting marks a row whose object a rollback is deleting right now: written
	// (compare-and-set) before the host delete, so a concurrent reconcile that finds the
	// object gone knows why and reports nothing.
	ResourceDeleting = "deleting"
	ResourceDeleted  = "deleted" // deleted by rollback
	ResourceMissing  = "missing" // reconcile found it gone
)

// Origins of ledger rows (Resource.Origin).
const (
	OriginCreated  = "created"
	OriginFound    = "found"
	OriginExisting = "existing"
)

// Resource types in the ledger.
const (
	TypeGroup        = "group"
	TypeAccount      = "account"
	TypeUser         = "user"
	TypeKey          = "key"
	TypeSubscription = "subscription"
)

// Resource is one ledger row: a host object this system created (or is about to).
type Resource struct {
	bun.BaseModel `bun:"table:managed_resources"`

	ID             string  `bun:"id,pk" json:"id"`
	HostID         string  `bun:"host_id" json:"host_id"`
	BatchID        string  `bun:"batch_id" json:"batch_id"`
	ItemID         string  `bun:"item_id" json:"item_id,omitempty"`
	Type           string  `bun:"resource_type" json:"resource_type"`
	HostResourceID *string `bun:"host_resource_id" json:"host_resource_id,omitempty"`
	Name           string  `bun:"name" json:"name"`
	IdempotencyKey string  `bun:"idempotency_key" json:"idempotency_key,omitempty"`
	State          string  `bun:"state" json:"state"`
	SecretEnc      string  `bun:"secret_enc" json:"-"`
	ParentID       string  `bun:"parent_id" json:"parent_id,omitempty"`
	// Origin says who made the object: OriginCreated (this product created it, so a
	// rollback may delete it once nothing uses it), OriginFound (it was on the host
	// already and is only used) or OriginExisting (the operator's named target group:
	// never changed or deleted).
	Origin    string         `bun:"origin" json:"origin,omitempty"`
	Details   map[string]any `bun:"details,type:text" json:"details,omitempty"`
	CreatedAt time.Time      `bun:"created_at" json:"created_at"`
	UpdatedAt time.Time      `bun:"updated_at" json:"updated_at"`
}

// Reconcile run statuses.
const (
	RunQueued    = "queued"    // created by the API, not picked up yet
	RunRunning   = "running"   // a worker is comparing; objects_checked moves
	RunCompleted = "completed" // findings are final
	RunFailed    = "failed"    // stopped by an error (summary says which), or abandoned
	RunSkipped   = "skipped"   // periodic slot skipped: the host's previous run was still running
)

// ReconcileRun is one comparison of the ledger with a host.
type ReconcileRun struct {
	bun.BaseModel `bun:"table:reconcile_runs"`

	ID       string    `bun:"id,pk" json:"id"`
	HostID   string    `bun:"host_id" json:"host_id"`
	BatchID  string    `bun:"batch_id" json:"batch_id,omitempty"`
	Slot     string    `bun:"slot" json:"slot,omitempty"`
	Status   string    `bun:"status" json:"status"`
	Findings []Finding `bun:"findings,type:text" json:"findings"`
	Summary  string    `bun:"summary" json:"summary"`
	// ObjectsChecked of ObjectsTotal ledger objects were compared so far (progress of a
	// running run; equal at the end of a completed one).
	ObjectsChecked int `bun:"objects_checked" json:"objects_checked"`
	ObjectsTotal   int `bun:"objects_total" json:"objects_total"`
	// HeartbeatAt is when a running run last reported progress; a running run without a
	// heartbeat for a while was abandoned (its worker died).
	HeartbeatAt *time.Time `bun:"heartbeat_at" json:"heartbeat_at,omitempty"`
	StartedAt   time.Time  `bun:"started_at" json:"started_at"`
	FinishedAt  *time.Time `bun:"finished_at" json:"finished_at,omitempty"`
}

// Finding is one difference between the ledger and the host.
type Finding struct {
	Kind           string `json:"kind"`           // missing, modified, orphaned
	Code           string `json:"code,omitempty"` // machine-readable cause of a modification
	ResourceType   string `json:"resource_type"`
	HostResourceID string `json:"host_resource_id"`
	Name           string `json:"name"`
	Detail         string `json:"detail"`
	Repair         string `json:"repair,omitempty"` // what an explicit repair did
}
