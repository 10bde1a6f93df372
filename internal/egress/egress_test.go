package egress

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestCheckAddr(t *testing.T) {
	strict, lax := Policy{}, Policy{AllowPrivate: true}
	cases := []struct {
		addr          string
		strict, laxOK bool
	}{
		{"8.8.8.8", true, true},
		{"2001:4860:4860::8888", true, true},
		{"169.254.169.254", false, false},
		{"100.100.100.200", false, false},
		{"fd00:ec2::254", false, false},
		{"fe80::1", false, false},
		{"0.0.0.0", false, false},
		{"::ffff:169.254.169.254", false, false},
		{"10.1.2.3", false, true},
		{"192.168.1.10", false, true},
		{"172.20.0.1", false, true},
		{"127.0.0.1", false, true},
		{"::1", false, true},
		{"100.64.1.1", false, true},
	}
	for _, c := range cases {
		a := netip.MustParseAddr(c.addr)
		if err := strict.CheckAddr(a); (err == nil) != c.strict {
			t.Errorf("strict %s: %v", c.addr, err)
		}
		if err := lax.CheckAddr(a); (err == nil) != c.laxOK {
			t.Errorf("lax %s: %v", c.addr, err)
		}
	}
}

func TestCheckURL(t *testing.T) {
	p := Policy{}
	for _, u := range []string{"http://169.254.169.254/latest", "http://[fe80::1]/", "http://localhost:8080", "http://10.0.0.1/v1"} {
		if err := p.CheckURL(u); !errors.Is(err, ErrDenied) {
			t.Errorf("%s allowed: %v", u, err)
		}
	}
	if err := p.CheckURL("https://api.deepseek.com"); err != nil {
		t.Errorf("public host refused: %v", err)
	}
}

// The guard acts on the dialled address: a name resolving to loopback is refused at
// connect time even though the URL looked harmless (DNS rebinding).
func TestTransportRefusesAtConnectTime(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	strict := Policy{}.Client(5 * time.Second)
	_, err := strict.Get("http://localhost:" + port + "/")
	if err == nil || !errors.Is(err, ErrDenied) {
		t.Fatalf("loopback via a host name was not refused: %v", err)
	}
	lax := Policy{AllowPrivate: true}.Client(5 * time.Second)
	resp, err := lax.Get(srv.URL)
	if err != nil {
		t.Fatalf("allowed private call failed: %v", err)
	}
	resp.Body.Close()
}
