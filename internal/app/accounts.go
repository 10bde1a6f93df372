package app

import (
	"github.com/cn-relay-manager/cn-relay-manager/internal/accounts"
	"github.com/cn-relay-manager/cn-relay-manager/jobs"
)

// Accounts returns the service of the work after the import (settings, webhooks, runs
// asked for, undo) bound to this process's store and queue.
func (a *App) Accounts() *accounts.Service {
	return &accounts.Service{Store: a.Store, Box: a.Box, Queue: a.Queue}
}

// AccountHandlers returns the handlers of re-verification, undo, notification and upkeep
// tasks for this process's worker.
func (a *App) AccountHandlers() *jobs.AccountHandlers {
	return &jobs.AccountHandlers{Verifier: a.Engine, Store: a.Store, Queue: a.Queue, Box: a.Box,
		Spec: a.Cfg.VerifyCron, Metrics: a.Metrics, Log: a.Log}
}

// startAccountsScheduler starts the scheduler of the upkeep and of CRM_VERIFY_CRON; the
// returned func stops it.
func (a *App) startAccountsScheduler() (func(), error) {
	s, err := jobs.NewAccountsScheduler(a.Conn, a.Cfg.VerifyCron, slogAdapter{a.Log})
	if err != nil {
		return nil, err
	}
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s.Shutdown, nil
}
