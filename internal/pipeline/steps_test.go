package pipeline

import (
	"testing"

	"github.com/cn-relay-manager/cn-relay-manager/internal/step"
)

// Every step of the table has a function that runs it, and nothing else does.
func TestEveryStepHasAHandler(t *testing.T) {
	for _, s := range step.Table {
		if handlers[s.Name] == nil {
			t.Errorf("step %q has no handler in pipeline.handlers", s.Name)
		}
	}
	if len(handlers) != len(step.Table) {
		t.Errorf("pipeline.handlers binds %d steps, the step table has %d", len(handlers), len(step.Table))
	}
}
