// Package testredis starts a private redis-server for a test on a free loopback port, so
// tests never touch data they did not create in a shared server. A missing redis-server
// fails the test loudly: the project's scripts install it (see .ci/run).
//
// Besides the plain server (Start) it starts the Redis an operator really runs: with an
// ACL user and the default user switched off, TLS-only with a generated CA (StartWith),
// and a master, a replica and a sentinel (StartSentinel).
package testredis

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a running private redis-server.
type Server struct {
	Addr string
	Port int
	Dir  string // its working directory (log file redis.log)

	// Credentials clients must use (empty for an open server).
	Username, Password string
	// TLS is set when the server speaks TLS only.
	TLS *TLSFiles

	cmd *exec.Cmd
}

// Options says how to start a server. The zero value is Start's open server.
type Options struct {
	// Username and Password create an ACL user with every permission (~* &* +@all) and
	// switch the default user off: a client that does not log in as this user can do
	// nothing. Password alone sets requirepass for the default user.
	Username, Password string
	// TLS makes the port TLS-only with these files (see NewTLS).
	TLS *TLSFiles
	// ReplicaOf makes the server a replica of this server (with its credentials).
	ReplicaOf *Server
	// Args are extra redis-server arguments.
	Args []string
}

// Start launches an open redis-server and registers its shutdown with t.Cleanup.
func Start(t testing.TB) *Server { return StartWith(t, Options{}) }

// StartWith launches a redis-server configured by o and waits until it answers.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	bin := binary(t)
	port := freePort(t)
	dir := t.TempDir()
	s := &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), Port: port, Dir: dir,
		Username: o.Username, Password: o.Password, TLS: o.TLS}
	args := []string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log")}
	if o.TLS != nil {
		args = append(args, "--port", "0", "--tls-port", fmt.Sprint(port), "--tls-cert-file", o.TLS.CertFile,
			"--tls-key-file", o.TLS.KeyFile, "--tls-ca-cert-file", o.TLS.CAFile, "--tls-auth-clients", "no")
	} else {
		args = append(args, "--port", fmt.Sprint(port))
	}
	args = append(args, authArgs(o.Username, o.Password)...)
	if m := o.ReplicaOf; m != nil {
		args = append(args, "--replicaof", "127.0.0.1", fmt.Sprint(m.Port))
		if m.Username != "" {
			args = append(args, "--masteruser", m.Username)
		}
		if m.Password != "" {
			args = append(args, "--masterauth", m.Password)
		}
	}
	args = append(args, o.Args...)
	s.cmd = exec.Command(bin, args...)
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(s.Stop)
	waitListening(t, s.Addr, filepath.Join(dir, "redis.log"))
	return s
}

// authArgs returns the redis-server arguments for an ACL user (default user off) or a
// plain requirepass.
func authArgs(user, password string) []string {
	switch {
	case user != "":
		return []string{"--user", "default", "off", "--user", user, "on", ">" + password, "~*", "&*", "+@all"}
	case password != "":
		return []string{"--requirepass", password}
	}
	return nil
}

// URL is the CRM_REDIS_URL of database db on this server, credentials included.
func (s *Server) URL(db int) string {
	u := url.URL{Scheme: "redis", Host: s.Addr, Path: fmt.Sprintf("/%d", db)}
	if s.TLS != nil {
		u.Scheme = "rediss"
		u.Host = fmt.Sprintf("localhost:%d", s.Port) // the name the certificate holds
	}
	if s.Username != "" {
		u.User = url.UserPassword(s.Username, s.Password)
	} else if s.Password != "" {
		u.User = url.UserPassword("", s.Password)
	}
	return u.String()
}

// Client returns a go-redis client on database db with the server's credentials (and,
// for a TLS server, its CA). The test's cleanup closes it.
func (s *Server) Client(t testing.TB, db int) *redis.Client {
	t.Helper()
	o := &redis.Options{Addr: s.Addr, Username: s.Username, Password: s.Password, DB: db}
	if s.TLS != nil {
		o.TLSConfig = s.TLS.ClientConfig(t, "localhost")
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Stop kills the server (idempotent).
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// Kill sends SIGKILL, waits for the process to end and reports whether it was running.
func (s *Server) Kill() bool {
	if s.cmd == nil || s.cmd.Process == nil {
		return false
	}
	err := s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
	return err == nil
}

// Log returns the server's log file.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
	return string(b)
}

// Sentinel is a master, one replica and one sentinel watching them (quorum 1, the master
// declared down after one second), all with the same credentials.
type Sentinel struct {
	Master, Replica *Server
	Addr            string // the sentinel's host:port
	MasterName      string
	Dir             string

	cmd *exec.Cmd
}

// SentinelOptions says how to start a Sentinel set.
type SentinelOptions struct {
	MasterName         string // default "crm-master"
	Username, Password string // ACL user of master and replica (see Options)
	// SentinelPassword protects the sentinel itself (requirepass); empty = open.
	SentinelPassword string
}

// StartSentinel starts a master, a replica and a sentinel, and waits until the replica
// is in sync and the sentinel knows it, so that a failover can promote it.
func StartSentinel(t testing.TB, o SentinelOptions) *Sentinel {
	t.Helper()
	if o.MasterName == "" {
		o.MasterName = "crm-master"
	}
	bin := binary(t)
	// Replicas announce themselves to sentinels; keep failover fast but not twitchy.
	tune := []string{"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"}
	master := StartWith(t, Options{Username: o.Username, Password: o.Password, Args: tune})
	replica := StartWith(t, Options{Username: o.Username, Password: o.Password, ReplicaOf: master, Args: tune})
	s := &Sentinel{Master: master, Replica: replica, MasterName: o.MasterName, Dir: t.TempDir()}
	port := freePort(t)
	s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	conf := []string{
		fmt.Sprintf("port %d", port),
		"bind 127.0.0.1",
		"dir " + s.Dir,
		"logfile " + filepath.Join(s.Dir, "sentinel.log"),
		fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 1", o.MasterName, master.Port),
		fmt.Sprintf("sentinel down-after-milliseconds %s 1000", o.MasterName),
		fmt.Sprintf("sentinel failover-timeout %s 10000", o.MasterName),
		fmt.Sprintf("sentinel parallel-syncs %s 1", o.MasterName),
	}
	if o.Username != "" {
		conf = append(conf, fmt.Sprintf("sentinel auth-user %s %s", o.MasterName, o.Username))
	}
	if o.Password != "" {
		conf = append(conf, fmt.Sprintf("sentinel auth-pass %s %s", o.MasterName, o.Password))
	}
	if o.SentinelPassword != "" {
		conf = append(conf, "requirepass "+o.SentinelPassword)
	}
	path := filepath.Join(s.Dir, "sentinel.conf")
	if err := os.WriteFile(path, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(bin, path, "--sentinel")
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start redis-server --sentinel: %v", err)
	}
	t.Cleanup(func() {
		if s.cmd.Process != nil {
			_ = s.cmd.Process.Kill()
			_ = s.cmd.Wait()
		}
	})
	waitListening(t, s.Addr, filepath.Join(s.Dir, "sentinel.log"))

	ctx := context.Background()
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, Password: o.SentinelPassword})
	defer sc.Close()
	rc := replica.Client(t, 0)
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, _ := rc.Info(ctx, "replication").Result()
		replicas, _ := sc.Replicas(ctx, o.MasterName).Result()
		known := false
		for _, r := range replicas {
			if r["port"] == fmt.Sprint(replica.Port) && r["flags"] == "slave" && r["master-link-status"] == "ok" {
				known = true
			}
		}
		if known && strings.Contains(info, "master_link_status:up") {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("sentinel set not ready after 30s: replica info %q, sentinel sees %v\n%s", info, replicas, s.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// URL is the CRM_REDIS_URL of database db through the sentinel.
func (s *Sentinel) URL(db int) string {
	u := url.URL{Scheme: "redis-sentinel", Host: s.Addr, Path: fmt.Sprintf("/%d", db),
		RawQuery: url.Values{"master": {s.MasterName}}.Encode()}
	if s.Master.Username != "" {
		u.User = url.UserPassword(s.Master.Username, s.Master.Password)
	} else if s.Master.Password != "" {
		u.User = url.UserPassword("", s.Master.Password)
	}
	return u.String()
}

// MasterAddr asks the sentinel which address is the master now.
func (s *Sentinel) MasterAddr(ctx context.Context, sentinelPassword string) (string, error) {
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, Password: sentinelPassword})
	defer sc.Close()
	a, err := sc.GetMasterAddrByName(ctx, s.MasterName).Result()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(a[0], a[1]), nil
}

// Log returns the logs of the sentinel, the master and the replica.
func (s *Sentinel) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "sentinel.log"))
	return "--- sentinel ---\n" + string(b) + "\n--- master ---\n" + s.Master.Log() + "\n--- replica ---\n" + s.Replica.Log()
}

func binary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found on PATH: install it (apt-get install redis-server) or run `make deps`: %v", err)
	}
	return bin
}

func waitListening(t testing.TB, addr, logFile string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logFile)
			t.Fatalf("redis-server did not start on %s: %v\n%s", addr, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
