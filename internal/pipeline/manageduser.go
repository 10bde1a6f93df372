package pipeline

import (
	"context"
	"sync"

	"github.com/cn-relay-manager/cn-relay-manager/internal/host"
)

// userLocks serialises balance changes of one managed user inside this process: items of a
// batch reach the top-up together, and the host answers a second request with the same
// Idempotency-Key 409 IDEMPOTENCY_IN_PROGRESS while the first is still running.
type userLocks struct {
	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

// lockUser takes the managed user's turn and returns its release.
func (e *Engine) lockUser(hostID string, userID int64) func() {
	e.users.mu.Lock()
	if e.users.locks == nil {
		e.users.locks = map[string]*sync.Mutex{}
	}
	k := hostID + "|" + idString(userID)
	l := e.users.locks[k]
	if l == nil {
		l = &sync.Mutex{}
		e.users.locks[k] = l
	}
	e.users.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// asUser runs call with the managed user's JWT. Any 401 (the token expired or was revoked,
// the user was deleted and created again, ...) drops the cached token and runs call once
// more after a fresh login; a second 401 is returned.
func (e *Engine) asUser(ctx context.Context, sc *stepContext, u *host.User, password string, call func(token string) error) error {
	token, err := e.userToken(ctx, sc, u, password)
	if err != nil {
		return err
	}
	err = call(token)
	if !host.IsUnauthorized(err) {
		return err
	}
	e.dropToken(sc, u.ID)
	if token, err = e.userToken(ctx, sc, u, password); err != nil {
		return err
	}
	return call(token)
}
