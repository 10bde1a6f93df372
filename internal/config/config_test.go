package config

import (
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadDefaults(t *testing.T) {
	c, _, err := Load("api", nil, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.ListenAddr != "127.0.0.1:8080" || !c.Embedded() || c.DatabaseURL != "./data/cn-relay-manager.db" {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if c.WindowDeadline != 5*time.Minute || len(c.WindowSchedule) != 5 {
		t.Fatalf("window defaults: %v %v", c.WindowDeadline, c.WindowSchedule)
	}
}

func TestFlagsOverrideEnv(t *testing.T) {
	c, _, err := Load("api", []string{"-listen", "127.0.0.1:9999"}, envOf(map[string]string{
		"CRM_LISTEN_ADDR": "127.0.0.1:7777", "CRM_REDIS_ADDR": "127.0.0.1:6379", "CRM_WINDOW_SCHEDULE": "1s, 3s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.ListenAddr != "127.0.0.1:9999" || c.RedisAddr != "127.0.0.1:6379" || c.Embedded() {
		t.Fatalf("override failed: %+v", c)
	}
	if len(c.WindowSchedule) != 2 || c.WindowSchedule[1] != 3*time.Second {
		t.Fatalf("schedule: %v", c.WindowSchedule)
	}
}

func TestBadConfigNamesTheVariable(t *testing.T) {
	cases := map[string]string{
		"CRM_WORKER_CONCURRENCY": "many",
		"CRM_WINDOW_DEADLINE":    "soon",
		"CRM_REDIS_ADDR":         "no-port",
		"CRM_API_TOKEN":          "short",
		"CRM_WINDOW_SCHEDULE":    "1s,-2s",
		"CRM_TOPUP_AMOUNT":       "-1",
	}
	for key, val := range cases {
		_, _, err := Load("api", nil, envOf(map[string]string{key: val}))
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s=%q: error %v does not name the variable", key, val, err)
		}
	}
}
