package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/store"
)

// masterKeySample is how many of the newest items' keys are tried at start, beside every
// host's admin credentials.
const masterKeySample = 20

// MasterKeyError is a master key that opens none of the secrets stored in the database:
// the process was started with another CRM_MASTER_KEY than the one the database was
// written with. Starting anyway would accept batches whose items can never run.
type MasterKeyError struct {
	Checked   int
	Owners    []string // what the secrets belong to, at most a few
	Generated bool     // the key was generated at this start (no CRM_MASTER_KEY, no key file)
}

func (e *MasterKeyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "CRM_MASTER_KEY: this master key opens none of the %d secrets stored in the database (%s): "+
		"they were sealed with another master key", e.Checked, strings.Join(e.Owners, ", "))
	if e.Generated {
		b.WriteString("; CRM_MASTER_KEY is not set and no master.key file was found in CRM_DATA_DIR, so a new key was just generated")
	}
	b.WriteString(". Start every api and worker process with the key this database was written with (CRM_MASTER_KEY, " +
		"or the master.key file of the data directory that first used it); to change the key, run `api rotate-master-key` " +
		"with the old key in CRM_MASTER_KEY and the new one in CRM_NEW_MASTER_KEY")
	return b.String()
}

// checkMasterKey tries box on the stored secrets. None opens: a *MasterKeyError (the
// process must not start). Some open: the others are logged by owner; their items fail
// with master_key_mismatch when they run and a host's admin key can be entered again.
func checkMasterKey(ctx context.Context, st *store.Store, box *secret.Box, generated bool, log *slog.Logger) error {
	samples, err := st.SealedSamples(ctx, masterKeySample)
	if err != nil {
		return err
	}
	var bad []string
	for _, s := range samples {
		if _, err := box.Open(s.Value); err != nil {
			bad = append(bad, s.Owner)
		}
	}
	switch {
	case len(samples) == 0 || len(bad) == 0:
		return nil
	case len(bad) == len(samples):
		return &MasterKeyError{Checked: len(samples), Owners: firstN(bad, 3), Generated: generated}
	}
	log.Error("CRM_MASTER_KEY opens some stored secrets but not these: they were sealed with another master key; "+
		"their items fail with master_key_mismatch, and a host's admin key can be entered again (PATCH /api/v1/hosts/{id})",
		"unreadable", firstN(bad, 10), "unreadable_count", len(bad), "checked", len(samples))
	return nil
}

func firstN(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(append([]string{}, s[:n]...), fmt.Sprintf("and %d more", len(s)-n))
}
