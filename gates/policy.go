package gates

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/meshcd/meshcd/schema"
)

// Policy is what the daemon lets a gate reach and how hard it may load, whatever a design
// says: gates are written by whoever can push to (or open a pull request on) a fleet repo,
// and each one makes meshcd send requests, with the design's headers and body, where the
// design points. Check is called before any connection.
type Policy struct {
	// AllowLoopback and AllowPrivate let gates reach loopback addresses and private ranges
	// (RFC 1918, RFC 4193, carrier-grade NAT). In-cluster Services have private addresses,
	// so a daemon that gates them needs AllowPrivate.
	AllowLoopback, AllowPrivate bool
	// PreviewHosts are the only hosts a pull request's gates may load ("host" or "host:port",
	// with path.Match globs such as "*.preview.example.com"). None: pull requests run no gate.
	PreviewHosts []string
	// Self are the daemon's own listen addresses: never a gate target, whatever else allows.
	Self []netip.AddrPort
	// Limits are ceilings no design can exceed.
	Limits Limits
	// Resolve looks a host name up (default: the system resolver).
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
}

// Limits cap one gate run.
type Limits struct {
	MaxConnections  int
	MaxQPS          float64
	MaxDuration     time.Duration
	MaxRequests     int
	MaxPayloadBytes int
	MaxHeaders      int
}

// DefaultLimits are ceilings a shared cluster can bear.
func DefaultLimits() Limits {
	return Limits{MaxConnections: 64, MaxQPS: 2000, MaxDuration: 15 * time.Minute, MaxRequests: 1_000_000, MaxPayloadBytes: 1 << 20, MaxHeaders: 32}
}

// DefaultPolicy refuses loopback, private, link-local and metadata addresses, runs no pull
// request gate, and caps load at DefaultLimits.
func DefaultPolicy() Policy { return Policy{Limits: DefaultLimits()} }

// Trigger says who asked for a run: a pull request's gate is held to PreviewHosts.
type Trigger int

const (
	// Trusted runs come from a protected branch: on change, on a schedule.
	Trusted Trigger = iota
	// PullRequest runs come from an unmerged, unreviewed head.
	PullRequest
)

// metadata are cloud instance-metadata addresses outside the link-local range.
var metadata = []netip.Addr{netip.MustParseAddr("fd00:ec2::254")}

// Check says whether a gate may load rawURL under the policy, and returns the address the
// load must connect to: the one checked, so a name that resolves differently a moment later
// cannot redirect the load. The error names the gate and what is refused.
func (p Policy) Check(ctx context.Context, g schema.Gate, rawURL string, by Trigger) (netip.Addr, error) {
	fail := func(format string, args ...any) (netip.Addr, error) {
		return netip.Addr{}, fmt.Errorf("gate refused by the daemon's policy: "+format, args...)
	}
	if err := p.checkLoad(g, by); err != nil {
		return netip.Addr{}, err
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "grpc") || u.Hostname() == "" || (u.Scheme == "grpc" && u.Port() == "") {
		return fail("%q is not an http(s) URL with a host, nor a gRPC host:port", rawURL)
	}
	host := u.Hostname()
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	portNum, _ := strconv.Atoi(port)
	if by == PullRequest && !matchHost(p.PreviewHosts, host, port) {
		if len(p.PreviewHosts) == 0 {
			return fail("pull request gates load only hosts listed in gates.previewHosts of the daemon config, and it lists none (%s)", host)
		}
		return fail("%s is not one of gates.previewHosts (%s)", net.JoinHostPort(host, port), strings.Join(p.PreviewHosts, ", "))
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		resolve := p.Resolve
		if resolve == nil {
			resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
				return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
			}
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		addrs, err = resolve(rctx, host)
		cancel()
		if err != nil || len(addrs) == 0 {
			return fail("%s does not resolve: %v", host, err)
		}
	}
	// Every address the name has must be allowed: the load may reach any of them.
	for _, a := range addrs {
		a = a.Unmap()
		if why := p.refuses(a, uint16(portNum)); why != "" {
			return fail("%s (%s) is %s", host, a, why)
		}
	}
	for _, a := range addrs {
		if a.Unmap().Is4() {
			return a.Unmap(), nil // the address fortio can be pinned to
		}
	}
	return addrs[0].Unmap(), nil
}

// refuses says why an address may not be a gate target, or "".
func (p Policy) refuses(a netip.Addr, port uint16) string {
	for _, s := range p.Self {
		if port == s.Port() && (a == s.Addr().Unmap() || s.Addr().IsUnspecified() && (a.IsLoopback() || isLocal(a))) {
			return "the daemon's own listen address"
		}
	}
	switch {
	case a.IsUnspecified() || a.IsMulticast() || a.IsInterfaceLocalMulticast():
		return "not a unicast address"
	case a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast():
		return "link-local (where cloud metadata services answer)"
	case contains(metadata, a):
		return "a cloud metadata address"
	case a.IsLoopback() && !p.AllowLoopback:
		return "loopback (allow it with gates.allowLoopback)"
	case (a.IsPrivate() || cgnat.Contains(a)) && !p.AllowPrivate:
		return "a private address (allow private ranges with gates.allowPrivate)"
	}
	return ""
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// isLocal is an address of this machine's interfaces.
func isLocal(a netip.Addr) bool {
	ifaces, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, ia := range ifaces {
		if n, ok := ia.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == a {
				return true
			}
		}
	}
	return false
}

func contains(list []netip.Addr, a netip.Addr) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}

// matchHost matches host and port against patterns of "host" or "host:port" globs.
func matchHost(patterns []string, host, port string) bool {
	for _, pat := range patterns {
		ph, pp, err := net.SplitHostPort(pat)
		if err != nil {
			ph, pp = pat, ""
		}
		if ok, _ := path.Match(strings.ToLower(ph), strings.ToLower(host)); ok && (pp == "" || pp == port) {
			return true
		}
	}
	return false
}

// checkLoad holds the gate's load to the policy's ceilings.
func (p Policy) checkLoad(g schema.Gate, by Trigger) error {
	l := p.Limits
	var problems []string
	if l.MaxConnections > 0 && g.Load.Connections > l.MaxConnections {
		problems = append(problems, fmt.Sprintf("connections %d is over the daemon's ceiling of %d", g.Load.Connections, l.MaxConnections))
	}
	switch {
	case g.Load.QPS <= 0 && by == PullRequest:
		problems = append(problems, "qps 0 (as fast as possible) is not allowed for a pull request's gate: give a rate")
	case l.MaxQPS > 0 && g.Load.QPS > l.MaxQPS:
		problems = append(problems, fmt.Sprintf("qps %g is over the daemon's ceiling of %g", g.Load.QPS, l.MaxQPS))
	}
	total := time.Duration(0)
	if g.Load.Duration != nil {
		total += g.Load.Duration.Duration
	}
	if g.Load.Warmup != nil {
		total += g.Load.Warmup.Duration
	}
	if l.MaxDuration > 0 && total > l.MaxDuration {
		problems = append(problems, fmt.Sprintf("duration (with warm-up) %s is over the daemon's ceiling of %s", total, l.MaxDuration))
	}
	if l.MaxRequests > 0 && g.Load.Requests > l.MaxRequests {
		problems = append(problems, fmt.Sprintf("requests %d is over the daemon's ceiling of %d", g.Load.Requests, l.MaxRequests))
	}
	if l.MaxPayloadBytes > 0 && len(g.Load.Payload) > l.MaxPayloadBytes {
		problems = append(problems, fmt.Sprintf("a payload of %d bytes is over the daemon's ceiling of %d", len(g.Load.Payload), l.MaxPayloadBytes))
	}
	if l.MaxHeaders > 0 && len(g.Load.Headers) > l.MaxHeaders {
		problems = append(problems, fmt.Sprintf("%d headers are over the daemon's ceiling of %d", len(g.Load.Headers), l.MaxHeaders))
	}
	if len(problems) > 0 {
		return fmt.Errorf("gate refused by the daemon's policy: %s", strings.Join(problems, "; "))
	}
	return nil
}
