package gates

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshcd/meshcd/schema"
)

// TestPolicyRefusesWhatAGateMustNotReach: every case a hostile design or pull request could
// write, against the addresses and ceilings of the daemon's policy.
func TestPolicyRefusesWhatAGateMustNotReach(t *testing.T) {
	names := map[string][]netip.Addr{
		"svc.shop.svc":           {netip.MustParseAddr("10.96.0.12")},
		"public.example.com":     {netip.MustParseAddr("93.184.216.34")},
		"rebind.example.com":     {netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("127.0.0.1")},
		"pr-7.preview.example":   {netip.MustParseAddr("93.184.216.40")},
		"metadata.example.com":   {netip.MustParseAddr("169.254.169.254")},
		"v6-metadata.example":    {netip.MustParseAddr("fd00:ec2::254")},
		"dual.example.com":       {netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("93.184.216.35")},
		"mapped-private.example": {netip.MustParseAddr("::ffff:192.168.1.10")},
	}
	base := Policy{
		Limits:       DefaultLimits(),
		PreviewHosts: []string{"*.preview.example", "public.example.com:8080"},
		Self:         []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:9090")},
		Resolve: func(_ context.Context, host string) ([]netip.Addr, error) {
			if a, ok := names[host]; ok {
				return a, nil
			}
			return nil, errors.New("no such host")
		},
	}
	private := base
	private.AllowPrivate = true
	loopback := base
	loopback.AllowLoopback = true
	gate := func(mod func(*schema.Gate)) schema.Gate {
		g := schema.Gate{Load: schema.LoadProfile{QPS: 50, Connections: 4, Duration: &schema.Duration{Duration: 30 * time.Second}}}
		if mod != nil {
			mod(&g)
		}
		return g
	}
	for _, tc := range []struct {
		name   string
		policy Policy
		url    string
		by     Trigger
		g      schema.Gate
		want   string // netip address, or the refusal's words
	}{
		{"public", base, "http://public.example.com/", Trusted, gate(nil), "93.184.216.34"},
		{"dual stack pins IPv4", base, "http://dual.example.com/", Trusted, gate(nil), "93.184.216.35"},
		{"metadata literal", private, "http://169.254.169.254/latest/meta-data/", Trusted, gate(nil), "link-local"},
		{"metadata by name", private, "http://metadata.example.com/", Trusted, gate(nil), "link-local"},
		{"metadata v6", private, "http://[fd00:ec2::254]/", Trusted, gate(nil), "metadata"},
		{"metadata v6 by name", private, "http://v6-metadata.example/", Trusted, gate(nil), "metadata"},
		{"loopback refused", base, "http://127.0.0.1:8080/", Trusted, gate(nil), "loopback"},
		{"loopback v6 refused", base, "http://[::1]:8080/", Trusted, gate(nil), "loopback"},
		{"loopback allowed", loopback, "http://127.0.0.1:8080/", Trusted, gate(nil), "127.0.0.1"},
		{"the daemon itself", loopback, "http://127.0.0.1:9090/metrics", Trusted, gate(nil), "own listen address"},
		{"private refused", base, "http://svc.shop.svc:8080/", Trusted, gate(nil), "private"},
		{"mapped private refused", base, "http://mapped-private.example/", Trusted, gate(nil), "private"},
		{"private allowed", private, "http://svc.shop.svc:8080/", Trusted, gate(nil), "10.96.0.12"},
		{"one bad address of many", base, "http://rebind.example.com/", Trusted, gate(nil), "loopback"},
		{"unresolvable", base, "http://nowhere.example/", Trusted, gate(nil), "does not resolve"},
		{"not http", base, "file:///etc/passwd", Trusted, gate(nil), "not an http(s) URL"},
		{"pr to a preview host", base, "http://pr-7.preview.example/", PullRequest, gate(nil), "93.184.216.40"},
		{"pr to a preview host and port", base, "http://public.example.com:8080/", PullRequest, gate(nil), "93.184.216.34"},
		{"pr to another port", base, "http://public.example.com/", PullRequest, gate(nil), "not one of gates.previewHosts"},
		{"pr elsewhere", private, "http://svc.shop.svc:8080/", PullRequest, gate(nil), "not one of gates.previewHosts"},
		{"pr with no preview hosts", Policy{Limits: DefaultLimits()}, "http://public.example.com/", PullRequest, gate(nil), "lists none"},
		{"pr unlimited qps", base, "http://pr-7.preview.example/", PullRequest, gate(func(g *schema.Gate) { g.Load.QPS = 0 }), "qps 0"},
		{"connections", base, "http://public.example.com/", Trusted, gate(func(g *schema.Gate) { g.Load.Connections = 10000 }), "connections 10000"},
		{"duration", base, "http://public.example.com/", Trusted, gate(func(g *schema.Gate) { g.Load.Duration.Duration = 8760 * time.Hour }), "duration"},
		{"qps", base, "http://public.example.com/", Trusted, gate(func(g *schema.Gate) { g.Load.QPS = 1e6 }), "qps 1e+06"},
		{"payload", base, "http://public.example.com/", Trusted, gate(func(g *schema.Gate) { g.Load.Payload = strings.Repeat("x", 2<<20) }), "payload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.policy.Check(t.Context(), tc.g, tc.url, tc.by)
			if a, perr := netip.ParseAddr(tc.want); perr == nil {
				if err != nil || got != a {
					t.Fatalf("got %v, %v; want %s allowed", got, err, a)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "policy") {
				t.Fatalf("got %v, %v; want a refusal saying %q", got, err, tc.want)
			}
		})
	}
}

// TestRunConnectsToThePinnedAddress: the load goes to the address the policy checked, not to
// whatever the name resolves to when fortio connects.
func TestRunConnectsToThePinnedAddress(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	g := schema.Gate{Load: schema.LoadProfile{QPS: 100, Connections: 1, Requests: 5}}
	// A name that does not resolve at all: only the pinned address can reach the server.
	res, err := Run(t.Context(), g, Target{URL: "http://target.invalid:" + port + "/", Pinned: map[string]netip.Addr{"target.invalid": netip.MustParseAddr("127.0.0.1")}, Design: "d", Gate: "g"})
	if err != nil {
		t.Fatal(err)
	}
	if hits.Load() != 5 || res.ErrorRate != 0 {
		t.Fatalf("server saw %d requests, error rate %v; want 5 through the pinned address", hits.Load(), res.ErrorRate)
	}
}

// FuzzPolicyCheck: whatever URL a design writes, the policy either refuses it, saying so, or
// allows an address it would not refuse: never loopback, private, link-local or the daemon's
// own when those are not allowed. Names resolve to fixed addresses, so the fuzzer explores
// URL syntax, not DNS.
func FuzzPolicyCheck(f *testing.F) {
	for _, seed := range []string{"http://127.0.0.1:8080/", "http://[::ffff:169.254.169.254]/", "https://user:pw@svc.shop:443/x?y#z", "grpc://api:9090", "http://0x7f.1/", "http://[fe80::1%25eth0]/", "HTTP://LOCALHOST/"} {
		f.Add(seed, false)
	}
	p := Policy{Limits: DefaultLimits(), PreviewHosts: []string{"*.preview.example"}, Self: []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:9090")},
		Resolve: func(_ context.Context, host string) ([]netip.Addr, error) {
			if strings.Contains(host, "local") {
				return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
			}
			return []netip.Addr{netip.MustParseAddr("93.184.216.34")}, nil
		}}
	g := schema.Gate{Load: schema.LoadProfile{QPS: 10, Connections: 1, Requests: 10}}
	f.Fuzz(func(t *testing.T, raw string, pr bool) {
		by := Trusted
		if pr {
			by = PullRequest
		}
		a, err := p.Check(context.Background(), g, raw, by)
		if err != nil {
			if !strings.Contains(err.Error(), "policy") {
				t.Fatalf("a refusal that does not say why: %v", err)
			}
			return
		}
		if why := p.refuses(a, 9090); a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsUnspecified() || why != "" {
			t.Fatalf("%q was allowed to reach %s (%s)", raw, a, why)
		}
	})
}
