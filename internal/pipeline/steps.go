package pipeline

import (
	"context"

	"github.com/cn-relay-manager/cn-relay-manager/internal/step"
)

// handlers binds every row of the step table (internal/step) to the function that runs
// it: import.go, account_probe.go and access_closure.go. TestEveryStepHasAHandler keeps
// the binding complete.
var handlers = map[string]func(e *Engine, ctx context.Context, sc *stepContext) result{
	step.Import:        (*Engine).runImport,
	step.AccountProbe:  (*Engine).runAccountProbe,
	step.AccessClosure: (*Engine).runAccessClosure,
}
