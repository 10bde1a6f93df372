package config

import (
	"strings"
	"testing"
)

// CRM_VERIFY_CRON takes a cron spec or @every duration of at least a minute.
func TestVerifyCron(t *testing.T) {
	for v, ok := range map[string]bool{"@every 1h": true, "0 */6 * * *": true, "@every 30s": false, "every hour": false, "* * *": false} {
		c, _, err := Load("t", nil, envOf(map[string]string{"CRM_VERIFY_CRON": v}))
		if ok && (err != nil || c.VerifyCron != v) {
			t.Errorf("%q refused: %v", v, err)
		}
		if !ok && (err == nil || !strings.Contains(err.Error(), "CRM_VERIFY_CRON")) {
			t.Errorf("%q accepted (%v)", v, err)
		}
	}
}
