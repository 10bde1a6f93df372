// Command crmsim runs the simulated sub2api host and the simulated upstream providers in
// a process of their own, for benchmarks (`crmctl bench`) and manual load tests: the
// simulators' CPU then does not count against the control plane's processes.
//
// It registers --keys upstream keys named <key-prefix><index, 6 digits> (mode ok),
// prints one JSON line with the URLs and the admin key on stdout and serves until it is
// killed (SIGINT/SIGTERM). GET <stats_url> answers the request counters:
//
//	{"host":{"requests":…,"admin":…,"gateway":…,"faults":…},
//	 "upstream":{"requests":…,"direct":…,"from_host":…,"from_host_background":…}}
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/secret"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/hostsim"
	"github.com/cn-relay-manager/cn-relay-manager/internal/sim/upstreamsim"
)

// Info is the JSON line crmsim prints once it serves.
type Info struct {
	HostURL     string `json:"host_url"`
	UpstreamURL string `json:"upstream_url"`
	StatsURL    string `json:"stats_url"`
	AdminKey    string `json:"admin_key"`
	Profile     string `json:"profile"`
	Keys        int    `json:"keys"`
	KeyPrefix   string `json:"key_prefix"`
	// BaseURLs maps provider ids to the simulated provider's OpenAI-compatible base URL.
	BaseURLs map[string]string `json:"base_urls"`
	PID      int               `json:"pid"`
}

// Stats are the request counters served at StatsURL.
type Stats struct {
	Host struct {
		Requests int64 `json:"requests"`
		Admin    int64 `json:"admin"`
		Gateway  int64 `json:"gateway"`
		User     int64 `json:"user"`
		Faults   int64 `json:"faults"` // answers with status 500 on admin routes
	} `json:"host"`
	Upstream struct {
		Requests           int64 `json:"requests"`
		Direct             int64 `json:"direct"`               // from the control plane (probes)
		FromHost           int64 `json:"from_host"`            // made by the host while answering a request
		FromHostBackground int64 `json:"from_host_background"` // the host's own background probes
	} `json:"upstream"`
}

const srcHeader = "X-Crmsim-Source"

type fgKey struct{}

// tagTransport marks the host's upstream calls as foreground (inside a host request)
// or background (the host's own probes).
type tagTransport struct{ base http.RoundTripper }

func (t tagTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if r.Context().Value(fgKey{}) != nil {
		r.Header.Set(srcHeader, "host")
	} else {
		r.Header.Set(srcHeader, "host-bg")
	}
	return t.base.RoundTrip(r)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection (hijacking for drop faults).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

type counters struct {
	hostReq, hostAdmin, hostGateway, hostUser, hostFaults atomic.Int64
	upReq, upDirect, upHost, upHostBG                     atomic.Int64
}

func (c *counters) snapshot() Stats {
	var s Stats
	s.Host.Requests, s.Host.Admin, s.Host.Gateway, s.Host.User, s.Host.Faults = c.hostReq.Load(), c.hostAdmin.Load(), c.hostGateway.Load(), c.hostUser.Load(), c.hostFaults.Load()
	s.Upstream.Requests, s.Upstream.Direct, s.Upstream.FromHost, s.Upstream.FromHostBackground = c.upReq.Load(), c.upDirect.Load(), c.upHost.Load(), c.upHostBG.Load()
	return s
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "crmsim:", err)
		os.Exit(1)
	}
}

func listen(addr string) (net.Listener, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	return net.Listen("tcp", addr)
}

func run(args []string) error {
	fs := flag.NewFlagSet("crmsim", flag.ContinueOnError)
	profile := fs.String("profile", hostsim.Profile179, "simulated host profile (0.1.179, 0.1.129, fork-0.1.321)")
	hostAddr := fs.String("host-addr", "", "listen address of the simulated host (default a free loopback port)")
	upAddr := fs.String("upstream-addr", "", "listen address of the simulated providers (default a free loopback port)")
	statsAddr := fs.String("stats-addr", "", "listen address of the stats endpoint (default a free loopback port)")
	hostLatency := fs.Duration("host-latency", 0, "latency added to every host request")
	upLatency := fs.Duration("upstream-latency", 0, "latency added to every upstream answer")
	warmup := fs.Duration("warmup", 0, "gateway warm-up of every new account (hostsim ChatWarmup), counted from the account's first gateway use")
	warmupFromCreation := fs.Bool("warmup-from-creation", false, "count --warmup from the account's creation instead of its first gateway use")
	testWarmups := fs.Int("test-warmups", 0, "the first N account tests of every account fail as during warm-up")
	faultRate := fs.Float64("fault-rate", 0, "fraction (0..1) of host admin requests answered 500 before doing anything")
	timeoutRate := fs.Float64("timeout-rate", 0, "fraction (0..1) of host admin requests that hang until the client gives up")
	keys := fs.Int("keys", 0, "number of upstream keys to register (mode ok)")
	keyPrefix := fs.String("key-prefix", "sk-bench-", "upstream keys are <prefix><index, 6 digits>, index from 0")
	adminKey := fs.String("admin-key", "", "the host's admin API key (default random)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *faultRate < 0 || *faultRate > 1 || *timeoutRate < 0 || *faultRate+*timeoutRate > 1 {
		return fmt.Errorf("--fault-rate and --timeout-rate must be between 0 and 1 and add up to at most 1")
	}
	if *keys < 0 {
		return fmt.Errorf("--keys must not be negative")
	}
	if *adminKey == "" {
		*adminKey = "admin-" + secret.RandomToken(32)
	}
	cnt := &counters{}

	// Simulated providers: served by upstreamsim's own listener; counted by their source.
	up, err := upstreamsim.Start(upstreamsim.Options{Latency: *upLatency})
	if err != nil {
		return err
	}
	defer up.Close()
	for i := 0; i < *keys; i++ {
		up.AddKey(fmt.Sprintf("%s%06d", *keyPrefix, i), upstreamsim.ModeOK)
	}
	// A counting proxy in front of upstreamsim keeps its URL-building intact: the
	// provider base URLs handed out point at the proxy.
	upLn, err := listen(*upAddr)
	if err != nil {
		return err
	}
	upURL := "http://" + upLn.Addr().String()
	target := up.URL()
	fwd := &http.Transport{MaxIdleConnsPerHost: 512, MaxConnsPerHost: 0, IdleConnTimeout: 90 * time.Second}
	upProxy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cnt.upReq.Add(1)
		switch r.Header.Get(srcHeader) {
		case "host":
			cnt.upHost.Add(1)
		case "host-bg":
			cnt.upHostBG.Add(1)
		default:
			cnt.upDirect.Add(1)
		}
		out, err := http.NewRequestWithContext(r.Context(), r.Method, target+r.URL.RequestURI(), r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		out.Header = r.Header.Clone()
		out.Header.Del(srcHeader)
		out.ContentLength = r.ContentLength
		resp, err := fwd.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		buf := make([]byte, 32<<10)
		fl, _ := w.(http.Flusher)
		for {
			n, rerr := resp.Body.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
				if fl != nil {
					fl.Flush()
				}
			}
			if rerr != nil {
				return
			}
		}
	})

	// Simulated host.
	beh := hostsim.Behavior{ChatWarmup: *warmup, WarmupFromFirstUse: *warmup > 0 && !*warmupFromCreation, TestWarmups: *testWarmups}
	hs := hostsim.New(hostsim.Options{Profile: *profile, AdminAPIKey: *adminKey, Latency: *hostLatency,
		FaultRate: *faultRate, TimeoutRate: *timeoutRate, Default: beh,
		UpstreamClient: &http.Client{Timeout: 30 * time.Second, Transport: tagTransport{base: &http.Transport{MaxIdleConnsPerHost: 512}}}})
	hostHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cnt.hostReq.Add(1)
		p := r.URL.Path
		admin := strings.HasPrefix(p, "/api/v1/admin")
		switch {
		case admin:
			cnt.hostAdmin.Add(1)
		case strings.HasPrefix(p, "/v1/"):
			cnt.hostGateway.Add(1)
		default:
			cnt.hostUser.Add(1)
		}
		rec := &statusRecorder{ResponseWriter: w}
		hs.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), fgKey{}, true)))
		if admin && rec.status == http.StatusInternalServerError {
			cnt.hostFaults.Add(1)
		}
	})
	hostLn, err := listen(*hostAddr)
	if err != nil {
		return err
	}
	statsLn, err := listen(*statsAddr)
	if err != nil {
		return err
	}
	statsMux := http.NewServeMux()
	statsMux.HandleFunc("/stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(cnt.snapshot())
	})
	statsMux.HandleFunc("/counts", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(hs.Counts())
	})
	servers := []*http.Server{
		{Handler: hostHandler, ReadHeaderTimeout: 10 * time.Second},
		{Handler: upProxy, ReadHeaderTimeout: 10 * time.Second},
		{Handler: statsMux, ReadHeaderTimeout: 10 * time.Second},
	}
	for i, ln := range []net.Listener{hostLn, upLn, statsLn} {
		go func(s *http.Server, ln net.Listener) { _ = s.Serve(ln) }(servers[i], ln)
	}

	info := Info{HostURL: "http://" + hostLn.Addr().String(), UpstreamURL: upURL, StatsURL: "http://" + statsLn.Addr().String() + "/stats",
		AdminKey: *adminKey, Profile: *profile, Keys: *keys, KeyPrefix: *keyPrefix, BaseURLs: map[string]string{}, PID: os.Getpid()}
	for _, p := range []string{"deepseek", "kimi", "glm", "qwen", "minimax", "openai_compatible"} {
		info.BaseURLs[p] = strings.Replace(up.BaseURL(p), target, upURL, 1)
	}
	line, err := json.Marshal(info)
	if err != nil {
		return err
	}
	fmt.Println(string(line))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	for _, s := range servers {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = s.Shutdown(sctx)
		cancel()
	}
	return nil
}

// Hijack lets the host's dropped-connection faults close the connection.
func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := s.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, http.ErrNotSupported
	}
	return h.Hijack()
}
