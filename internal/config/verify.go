package config

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
)

// MinVerifyPeriod is the shortest period CRM_VERIFY_CRON may have: a run's checks are
// spread over most of its period, and slots are minutes.
const MinVerifyPeriod = time.Minute

// checkVerifyCron refuses a spec the scheduler cannot run, or one that comes round more
// often than MinVerifyPeriod.
func checkVerifyCron(spec string) error {
	sched, err := cron.ParseStandard(spec)
	if err != nil {
		return fmt.Errorf("CRM_VERIFY_CRON: %q is not a five-field cron spec or @every duration: %v", spec, err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	first := sched.Next(at)
	if d := sched.Next(first).Sub(first); d < MinVerifyPeriod {
		return fmt.Errorf("CRM_VERIFY_CRON: %q runs every %s; the shortest period is %s", spec, d, MinVerifyPeriod)
	}
	return nil
}
