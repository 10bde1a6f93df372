package pipeline

import (
	"errors"
	"fmt"

	"github.com/cn-relay-manager/cn-relay-manager/internal/failure"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// sealedError is a stored secret this process cannot open: it was sealed under another
// master key (or the stored value is corrupted). Running the step again cannot change
// that, so the item fails at once instead of its task being retried forever.
type sealedError struct {
	what string // "the API key of item 3 (name)", "the admin key of host prod"
	err  error
}

func (e *sealedError) Error() string { return fmt.Sprintf("cannot open %s: %v", e.what, e.err) }

func (e *sealedError) Unwrap() error { return e.err }

// unreadable turns a secret the process cannot open into the step's failed result
// (master_key_mismatch, naming the secret and the setting to fix); ok is false for any
// other error.
func unreadable(err error) (result, bool) {
	var se *sealedError
	if !errors.As(err, &se) {
		return result{}, false
	}
	return result{outcome: store.OutcomeFailed, class: failure.MasterKeyMismatch, status: store.ItemFailed,
		message: fmt.Sprintf("%s cannot be opened with this process's CRM_MASTER_KEY (%v): the process runs with "+
			"another master key than the one it was stored under. Start every api and worker process with the "+
			"original CRM_MASTER_KEY (or the master.key file of its CRM_DATA_DIR), then retry the batch; "+
			"a host's admin key can also be entered again (PATCH /api/v1/hosts/{id})", se.what, se.err)}, true
}
