package pipeline

import (
	"context"

	"github.com/cn-relay-manager/cn-relay-manager/internal/host"
)

// HostClient is the part of the sub2api client the pipeline uses; *host.Client
// satisfies it, and tests may wrap it to inject faults.
type HostClient interface {
	CreateGroup(ctx context.Context, req host.CreateGroupRequest) (*host.Group, error)
	FindGroupByName(ctx context.Context, name string) (*host.Group, error)
	CreateAccount(ctx context.Context, req host.CreateAccountRequest, idempotencyKey string) (*host.Account, error)
	GetAccount(ctx context.Context, id int64) (*host.Account, error)
	ListAccounts(ctx context.Context, search string) ([]host.Account, error)
	UpdateAccount(ctx context.Context, id int64, req host.UpdateAccountRequest) (*host.Account, error)
	TestAccount(ctx context.Context, id int64, modelID string) (*host.TestResult, error)
	AccountModels(ctx context.Context, id int64) ([]string, error)
	ClearAccountError(ctx context.Context, id int64) (*host.Account, error)
	SetSchedulable(ctx context.Context, id int64, schedulable bool) (*host.Account, error)
	CreateUser(ctx context.Context, req host.CreateUserRequest) (*host.User, error)
	GetUser(ctx context.Context, id int64) (*host.User, error)
	FindUserByEmail(ctx context.Context, email string) (*host.User, error)
	AddBalance(ctx context.Context, userID int64, amount float64, notes, idempotencyKey string) (*host.User, error)
	Login(ctx context.Context, email, password string) (*host.Session, error)
	CreateKey(ctx context.Context, userToken string, req host.CreateKeyRequest, idempotencyKey string) (*host.APIKey, error)
	ListKeys(ctx context.Context, userToken string) ([]host.APIKey, error)
	AssignSubscription(ctx context.Context, req host.AssignSubscriptionRequest) (*host.Subscription, error)
	ListUserSubscriptions(ctx context.Context, userID int64) ([]host.Subscription, error)
	GatewayModels(ctx context.Context, key string) ([]string, error)
	GatewayChat(ctx context.Context, key string, req host.ChatRequest) (*host.ChatResult, error)

	// Used by reconcile and rollback.
	GetGroup(ctx context.Context, id int64) (*host.Group, error)
	ListGroups(ctx context.Context, search string) ([]host.Group, error)
	ListUserKeys(ctx context.Context, userID int64) ([]host.APIKey, error)
	DeleteGroup(ctx context.Context, id int64) error
	DeleteAccount(ctx context.Context, id int64) error
	DeleteUser(ctx context.Context, id int64) error
	DeleteKey(ctx context.Context, userToken string, id int64) error
	RevokeSubscription(ctx context.Context, id int64) error
}

var _ HostClient = (*host.Client)(nil)
