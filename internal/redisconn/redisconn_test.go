package redisconn

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cn-relay-manager/cn-relay-manager/internal/testredis"
)

const secretPW = "s3cret-Pa55word-never-shown"

func TestParseForms(t *testing.T) {
	c, err := Parse("redis://crm:"+secretPW+"@redis.internal:6380/3", "")
	if err != nil {
		t.Fatal(err)
	}
	if o := c.single; o.Addr != "redis.internal:6380" || o.Username != "crm" || o.Password != secretPW || o.DB != 3 || o.TLSConfig != nil {
		t.Fatalf("redis:// parsed to %+v", o)
	}
	if c.String() != "redis://crm:xxxxx@redis.internal:6380/3" || c.Source() != EnvURL || c.Sentinel() {
		t.Fatalf("redacted %q source %q", c.String(), c.Source())
	}

	c, err = Parse("rediss://:"+secretPW+"@cache.example.com:6379/1", "")
	if err != nil {
		t.Fatal(err)
	}
	if o := c.single; o.TLSConfig == nil || o.TLSConfig.ServerName != "cache.example.com" || o.TLSConfig.RootCAs != nil || o.Password != secretPW || o.Username != "" {
		t.Fatalf("rediss:// parsed to %+v", o)
	}

	c, err = Parse("redis-sentinel://:"+secretPW+"@10.0.0.1:26379,10.0.0.2:26379/2?master=mymaster", "")
	if err != nil {
		t.Fatal(err)
	}
	f := c.failover
	if f.MasterName != "mymaster" || strings.Join(f.SentinelAddrs, ",") != "10.0.0.1:26379,10.0.0.2:26379" || f.DB != 2 ||
		f.SentinelPassword != secretPW || f.Password != secretPW || f.Username != "" || !c.Sentinel() {
		t.Fatalf("redis-sentinel:// parsed to %+v", f)
	}
	if strings.Contains(c.String(), secretPW) {
		t.Fatalf("redacted form shows the password: %s", c.String())
	}

	c, err = Parse("redis-sentinel://crm:"+secretPW+"@s1:26379/0?master=m&sentinel_password=other-secret-pw", "")
	if err != nil {
		t.Fatal(err)
	}
	if f := c.failover; f.Username != "crm" || f.Password != secretPW || f.SentinelPassword != "other-secret-pw" || f.SentinelUsername != "" {
		t.Fatalf("sentinel credentials %+v", f)
	}
	if strings.Contains(c.String(), "other-secret-pw") || strings.Contains(c.String(), secretPW) {
		t.Fatalf("redacted form shows a password: %s", c.String())
	}

	if c := FromAddr("127.0.0.1:6379", 4); c.single.Addr != "127.0.0.1:6379" || c.single.DB != 4 || c.Source() != EnvAddr {
		t.Fatalf("FromAddr: %+v", c.single)
	}
}

func TestParseErrorsNameTheVariableNotTheSecret(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ url, ca, want string }{
		{"redis://crm:" + secretPW + " x@host:1/3", "", EnvURL},
		{"http://crm:" + secretPW + "@host:1/3", "", "unsupported scheme"},
		{"redis://crm:" + secretPW + "@host:1/three", "", EnvURL},
		{"redis://crm:" + secretPW + "@host:1/3", ca, EnvTLSCA},
		{"rediss://crm:" + secretPW + "@host:1/3", ca, "no PEM certificate"},
		{"rediss://crm:" + secretPW + "@host:1/3", ca + ".missing", EnvTLSCA},
		{"redis-sentinel://:" + secretPW + "@s1:26379,s2:26379/0", "", "master=NAME"},
		{"redis-sentinel://:" + secretPW + "@s1:26379,,s2:26379/0?master=m", "", "empty sentinel address"},
		{"redis-sentinel://:" + secretPW + "@s1/0?master=m", "", "not host:port"},
		{"redis-sentinel://:" + secretPW + "@s1:1/x?master=m", "", "not a number"},
		{"redis-sentinel://:" + secretPW + "@s1:1/0?master=m&pasword=" + secretPW, "", "unknown parameter"},
		{"redis://:" + secretPW + "@/0", "", "no host"},
	}
	for _, tc := range cases {
		_, err := Parse(tc.url, tc.ca)
		if err == nil {
			t.Errorf("%s: accepted", strings.ReplaceAll(tc.url, secretPW, "PW"))
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not say %q", strings.ReplaceAll(tc.url, secretPW, "PW"), err, tc.want)
		}
		if strings.Contains(err.Error(), secretPW) {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

// explain connects with c and returns the classified failure of a ping.
func explain(t *testing.T, c *Conn) *Error {
	t.Helper()
	cl := c.ProbeClient()
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	err := c.Check(ctx, cl)
	if err == nil {
		t.Fatalf("%s: ping succeeded", c)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("%s: took %s to fail", c, time.Since(start))
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("not a classified error: %T %v", err, err)
	}
	t.Logf("%s in %s", err, time.Since(start).Round(time.Millisecond))
	for _, s := range []string{err.Error(), e.Public()} {
		if strings.Contains(s, secretPW) || strings.Contains(s, "wrong-"+secretPW) {
			t.Fatalf("message shows the password: %s", s)
		}
	}
	if !strings.HasPrefix(e.Public(), c.Source()+": ") || strings.Contains(e.Public(), c.String()) {
		t.Fatalf("public message %q should name %s and leave out the URL", e.Public(), c.Source())
	}
	return e
}

func mustParse(t *testing.T, raw, ca string) *Conn {
	t.Helper()
	c, err := Parse(raw, ca)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// An ACL user with the default user off: the right credentials work (database from the
// URL), a wrong password and a missing user are explained.
func TestACLUser(t *testing.T) {
	s := testredis.StartWith(t, testredis.Options{Username: "crm", Password: secretPW})
	c := mustParse(t, s.URL(3), "")
	cl := c.Client()
	defer cl.Close()
	ctx := context.Background()
	if err := c.Check(ctx, cl); err != nil {
		t.Fatal(err)
	}
	if err := cl.Set(ctx, "probe", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n := s.Client(t, 3).Exists(ctx, "probe").Val(); n != 1 {
		t.Fatalf("the key did not land in database 3")
	}
	if who := cl.Do(ctx, "ACL", "WHOAMI").String(); !strings.Contains(who, "crm") {
		t.Fatalf("connected as %s", who)
	}

	e := explain(t, mustParse(t, "redis://crm:wrong-"+secretPW+"@"+s.Addr+"/3", ""))
	if !strings.Contains(e.Cause, "authentication failed") || !strings.Contains(e.Cause, "WRONGPASS") {
		t.Errorf("wrong password explained as %q", e.Cause)
	}
	e = explain(t, mustParse(t, "redis://"+s.Addr+"/3", ""))
	if !strings.Contains(e.Cause, "NOAUTH") && !strings.Contains(e.Cause, "authentication") {
		t.Errorf("missing credentials explained as %q", e.Cause)
	}
	e = explain(t, FromAddr(s.Addr, 0))
	if e.Setting != EnvAddr {
		t.Errorf("legacy form names %s", e.Setting)
	}
}

// TestRedisTLSPrivateCA: a TLS-only server with a certificate from a generated CA. With
// CRM_REDIS_TLS_CA the connection works; without it verification fails with a message
// that says so; a plain redis:// URL against the TLS port is explained too.
func TestRedisTLSPrivateCA(t *testing.T) {
	files := testredis.NewTLS(t)
	s := testredis.StartWith(t, testredis.Options{Username: "crm", Password: secretPW, TLS: files})
	ctx := context.Background()

	c := mustParse(t, s.URL(2), files.CAFile)
	cl := c.Client()
	defer cl.Close()
	if err := c.Check(ctx, cl); err != nil {
		t.Fatalf("%s with the CA: %v", c, err)
	}

	e := explain(t, mustParse(t, s.URL(2), ""))
	if !strings.Contains(e.Cause, "TLS verification failed") || !strings.Contains(e.Cause, EnvTLSCA) {
		t.Errorf("unknown CA explained as %q", e.Cause)
	}
	// The certificate names localhost and 127.0.0.1, not this name.
	other := testredis.NewTLS(t, "redis.other.example")
	wrongName := testredis.StartWith(t, testredis.Options{TLS: other})
	e = explain(t, mustParse(t, strings.Replace(wrongName.URL(0), "localhost", "127.0.0.1", 1), other.CAFile))
	if !strings.Contains(e.Cause, "TLS verification failed") {
		t.Errorf("wrong server name explained as %q", e.Cause)
	}
	plain := strings.Replace(s.URL(2), "rediss://", "redis://", 1)
	e = explain(t, mustParse(t, plain, ""))
	if e.Cause == "" {
		t.Errorf("plain Redis against a TLS port not explained")
	}
	t.Logf("plain redis:// against a TLS port: %s", e.Public())
}

// Sentinel: the URL finds the master; an unknown master name and unreachable sentinels
// are told apart.
func TestSentinel(t *testing.T) {
	set := testredis.StartSentinel(t, testredis.SentinelOptions{Username: "crm", Password: secretPW})
	ctx := context.Background()
	c := mustParse(t, set.URL(5), "")
	cl := c.Client()
	defer cl.Close()
	if err := c.Check(ctx, cl); err != nil {
		t.Fatalf("%s: %v\n%s", c, err, set.Log())
	}
	if err := cl.Set(ctx, "through-sentinel", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if set.Master.Client(t, 5).Exists(ctx, "through-sentinel").Val() != 1 {
		t.Fatal("the write did not reach the master's database 5")
	}

	e := explain(t, mustParse(t, strings.Replace(set.URL(5), "master="+set.MasterName, "master=no-such-master", 1), ""))
	if !strings.Contains(e.Cause, `do not know a master named "no-such-master"`) {
		t.Errorf("unknown master explained as %q", e.Cause)
	}
	dead := freeAddrs(t, 2)
	e = explain(t, mustParse(t, "redis-sentinel://:"+secretPW+"@"+dead+"/0?master="+set.MasterName, ""))
	if !strings.Contains(e.Cause, "no sentinel reachable at "+dead) {
		t.Errorf("unreachable sentinels explained as %q", e.Cause)
	}
	e = explain(t, mustParse(t, "redis-sentinel://crm:wrong-"+secretPW+"@"+set.Addr+"/0?master="+set.MasterName, ""))
	if !strings.Contains(e.Cause, "authentication failed") && !strings.Contains(e.Cause, "refused the password") {
		t.Errorf("wrong master password explained as %q", e.Cause)
	}
}

// A sentinel with its own password, given as ?sentinel_password=.
func TestSentinelOwnPassword(t *testing.T) {
	set := testredis.StartSentinel(t, testredis.SentinelOptions{Password: secretPW, SentinelPassword: "sentinel-" + secretPW})
	ctx := context.Background()
	c := mustParse(t, set.URL(0)+"&sentinel_password=sentinel-"+secretPW, "")
	cl := c.Client()
	defer cl.Close()
	if err := c.Check(ctx, cl); err != nil {
		t.Fatalf("%s: %v", c, err)
	}
	e := explain(t, mustParse(t, set.URL(0), ""))
	if !strings.Contains(e.Cause, "sentinel") {
		t.Errorf("sentinel refusing the password explained as %q", e.Cause)
	}
	if strings.Contains(e.Error(), "sentinel-"+secretPW) {
		t.Fatal("message shows the sentinel password")
	}
	var re redis.Error
	_ = errors.As(e, &re)
}

func freeAddrs(t *testing.T, n int) string {
	t.Helper()
	var out []string
	for i := 0; i < n; i++ {
		s := testredis.Start(t)
		out = append(out, s.Addr)
		s.Stop() // the port is now closed: connection refused
	}
	return strings.Join(out, ",")
}
