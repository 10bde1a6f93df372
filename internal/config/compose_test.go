package config

import (
	"bufio"
	"os"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v4"
)

// composeFile is the part of docker-compose.yml the checks read.
type composeFile struct {
	Services map[string]struct {
		Command     any               `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		DependsOn   map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
}

var composeVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?][^}]*)?\}`)

// interpolate does what docker compose does with ${VAR}, ${VAR:?msg}, ${VAR:-default} and
// $$ (a literal $ for the container's shell).
func interpolate(s string, vars map[string]string) string {
	s = strings.ReplaceAll(s, "$$", "\x00")
	s = composeVar.ReplaceAllStringFunc(s, func(m string) string { return vars[composeVar.FindStringSubmatch(m)[1]] })
	return strings.ReplaceAll(s, "\x00", "$")
}

// docker-compose.yml and .env.example agree, and the api and worker environments they
// produce are valid configurations on a password-protected Redis through CRM_REDIS_URL.
// (No docker engine here: the file is checked as data.)
func TestDockerCompose(t *testing.T) {
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(raw, &cf); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	example := map[string]string{}
	f, err := os.Open("../../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, _, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf(".env.example: %q is not NAME=value", line)
		}
		example[k] = ""
	}
	used := map[string]bool{}
	for _, m := range composeVar.FindAllStringSubmatch(strings.ReplaceAll(string(raw), "$$", ""), -1) {
		used[m[1]] = true
		if _, ok := example[m[1]]; !ok {
			t.Errorf("docker-compose.yml uses ${%s}, which .env.example does not document", m[1])
		}
	}
	for k := range example {
		if !used[k] {
			t.Errorf(".env.example documents %s, which docker-compose.yml does not use", k)
		}
	}

	vars := map[string]string{"REDIS_PASSWORD": "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "CRM_API_TOKEN": "compose-token-0123456789abcdef",
		"CRM_MASTER_KEY": "compose-master-key-0123456789abcdef", "POSTGRES_PASSWORD": "5f4e3d2c1b0a99887766554433221100"}
	for _, name := range []string{"redis", "postgres", "api", "worker"} {
		svc, ok := cf.Services[name]
		if !ok {
			t.Fatalf("no %s service", name)
		}
		if len(svc.Healthcheck.Test) < 2 {
			t.Errorf("%s has no healthcheck", name)
		}
		if name == "redis" {
			cmd := strings.Join(toStrings(svc.Command), " ")
			if !strings.Contains(cmd, "--user default off") || !strings.Contains(cmd, "$$REDIS_PASSWORD") {
				t.Errorf("redis does not require the password from .env: %s", cmd)
			}
			continue
		}
		if name == "postgres" {
			continue
		}
		if svc.DependsOn["redis"].Condition != "service_healthy" || svc.DependsOn["postgres"].Condition != "service_healthy" {
			t.Errorf("%s does not wait for a healthy redis and postgres", name)
		}
		if _, ok := svc.Environment["CRM_REDIS_ADDR"]; ok {
			t.Errorf("%s still uses CRM_REDIS_ADDR", name)
		}
		if h := svc.Healthcheck.Test; len(h) < 3 || h[len(h)-1] != "healthcheck" {
			t.Errorf("%s healthcheck %v: want the binary's healthcheck command", name, h)
		}
		env := map[string]string{}
		for k, v := range svc.Environment {
			env[k] = interpolate(v, vars)
		}
		c, _, err := Load(name, nil, envOf(env))
		if err != nil {
			t.Fatalf("%s environment: %v", name, err)
		}
		conn, err := c.Redis()
		if err != nil || conn == nil || c.Embedded() {
			t.Fatalf("%s: no shared Redis (%v)", name, err)
		}
		if conn.String() != "redis://crm:xxxxx@redis:6379/0" {
			t.Errorf("%s Redis %s", name, conn)
		}
		// Several processes share the store: PostgreSQL, never one SQLite file.
		if !strings.HasPrefix(c.DatabaseURL, "postgres://crm:"+vars["POSTGRES_PASSWORD"]+"@postgres:5432/crm") {
			t.Errorf("%s database %q: want the compose PostgreSQL", name, c.DatabaseURL)
		}
	}
}

// The image's build context holds what the Dockerfile copies and builds, and the data
// directory the compose volume mounts belongs to the user the processes run as.
func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(raw)
	for _, path := range []string{"go.mod", "go.sum", "cmd/api", "cmd/worker"} {
		if _, err := os.Stat("../../" + path); err != nil {
			t.Errorf("the Dockerfile needs %s in the build context: %v", path, err)
		}
	}
	for _, want := range []string{"./cmd/api", "./cmd/worker", "USER nonroot", "--chown=65532:65532 /out/data /data"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if i, j := strings.Index(df, "--chown=65532:65532 /out/data /data"), strings.Index(df, "USER nonroot"); i > j {
		t.Errorf("the data directory is created after switching to the nonroot user")
	}
	// What .dockerignore leaves out must not be what the build needs.
	if ign, err := os.ReadFile("../../.dockerignore"); err == nil {
		for _, line := range strings.Split(string(ign), "\n") {
			line = strings.TrimSpace(line)
			for _, need := range []string{"go.mod", "go.sum", "cmd", "internal", "jobs", "migrations"} {
				if line == need || line == need+"/" {
					t.Errorf(".dockerignore leaves out %s, which the build needs", need)
				}
			}
		}
	}
}

func toStrings(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, strings.TrimSpace(e.(string)))
		}
		return out
	}
	return nil
}
