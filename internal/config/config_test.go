package config

import (
	"errors"
	"flag"
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

const redisPW = "Zq9-redis-password-xyz"

func TestRedisURL(t *testing.T) {
	c, _, err := Load("worker", nil, envOf(map[string]string{"CRM_REDIS_URL": "redis://crm:" + redisPW + "@redis:6379/3"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Embedded() {
		t.Fatal("CRM_REDIS_URL alone must not run the embedded queue")
	}
	conn, err := c.Redis()
	if err != nil || conn == nil {
		t.Fatalf("Redis(): %v %v", conn, err)
	}
	if conn.String() != "redis://crm:xxxxx@redis:6379/3" {
		t.Fatalf("masked form %q", conn.String())
	}
	legacy, _, err := Load("worker", nil, envOf(map[string]string{"CRM_REDIS_ADDR": "127.0.0.1:6379", "CRM_REDIS_DB": "2"}))
	if err != nil {
		t.Fatal(err)
	}
	if conn, _ := legacy.Redis(); conn == nil || conn.String() != "redis://127.0.0.1:6379/2" || conn.Source() != "CRM_REDIS_ADDR" {
		t.Fatalf("legacy form: %v", conn)
	}
	if conn, _ := Defaults().Redis(); conn != nil {
		t.Fatal("no Redis configured must mean the embedded queue")
	}
}

func TestRedisURLErrors(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"CRM_REDIS_URL": "redis://crm:" + redisPW + "@r:6379/3", "CRM_REDIS_ADDR": "r:6379"}, "use one form"},
		{map[string]string{"CRM_REDIS_URL": "redis://crm:" + redisPW + "@r:6379/3", "CRM_REDIS_DB": "4"}, "use one form"},
		{map[string]string{"CRM_REDIS_URL": "memcached://crm:" + redisPW + "@r:1"}, "CRM_REDIS_URL"},
		{map[string]string{"CRM_REDIS_URL": "redis://crm:" + redisPW + "@r:6379/3", "CRM_REDIS_TLS_CA": "/nonexistent.pem"}, "CRM_REDIS_TLS_CA"},
		{map[string]string{"CRM_REDIS_TLS_CA": "/nonexistent.pem"}, "CRM_REDIS_TLS_CA"},
	}
	for _, tc := range cases {
		_, _, err := Load("api", nil, envOf(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v does not say %q", tc.env["CRM_REDIS_URL"] != "", err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), redisPW) {
			t.Errorf("error shows the Redis password: %v", err)
		}
	}
}

// -help prints flag defaults, which come from the environment: the password stays masked.
func TestHelpMasksRedisPassword(t *testing.T) {
	var out strings.Builder
	_, fs, err := Load("api", []string{"-help"}, envOf(map[string]string{"CRM_REDIS_URL": "rediss://crm:" + redisPW + "@r:6380/1"}))
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-help: %v", err)
	}
	fs.SetOutput(&out)
	fs.PrintDefaults()
	if strings.Contains(out.String(), redisPW) || !strings.Contains(out.String(), "rediss://crm:xxxxx@r:6380/1") {
		t.Fatalf("help text:\n%s", out.String())
	}
	// Set through the flag itself, the value is masked the same way.
	c, fs, err := Load("api", []string{"-redis-url", "redis://:" + redisPW + "@r:1/0"}, envOf(nil))
	if err != nil || c.RedisURL == "" {
		t.Fatalf("-redis-url: %v", err)
	}
	if v := fs.Lookup("redis-url").Value.String(); strings.Contains(v, redisPW) {
		t.Fatalf("flag value shows the password: %s", v)
	}
}
