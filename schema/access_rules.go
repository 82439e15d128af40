package schema

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// AccessPath reads an access rule's path: "/admin/*" is the prefix /admin (itself and below
// it, element by element), "/*" every path, anything else an exact path.
func AccessPath(p string) (base string, prefix bool) {
	if p == "/*" {
		return "/", true
	}
	if b, ok := strings.CutSuffix(p, "/*"); ok {
		return b, true
	}
	return p, false
}

// AccessPathWithin reports whether every request path p matches also matches outer.
func AccessPathWithin(p, outer string) bool {
	pb, pp := AccessPath(p)
	ob, op := AccessPath(outer)
	if !op {
		return !pp && pb == ob
	}
	return ob == "/" || pb == ob || strings.HasPrefix(pb, ob+"/")
}

// ParseIPBlock reads a CIDR or a single address.
func ParseIPBlock(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Masked() != p {
			return netip.Prefix{}, fmt.Errorf("%s has host bits set (the block is %s)", s, p.Masked())
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func checkAccessRule(r AccessRule, svc Service, p fieldPath) []ruleIssue {
	var out []ruleIssue
	add := func(p fieldPath, format string, args ...any) {
		out = append(out, ruleIssue{p, fmt.Sprintf(format, args...)})
	}
	if !r.Who() && !r.What() && len(r.Ports) == 0 {
		add(p, "a rule must name who (serviceAccounts, namespaces, ipBlocks) or what (paths, methods, ports, hosts); an empty rule would match every request")
	}
	if len(r.ServiceAccounts) > 0 && len(r.Namespaces) > 0 {
		add(p, "name serviceAccounts or namespaces in one rule, not both: a service account already belongs to one namespace (write two rules to allow either)")
	}
	for j, sa := range r.ServiceAccounts {
		if ns, name, ok := strings.Cut(sa, "/"); !ok || !dns1123.MatchString(ns) || !dns1123.MatchString(name) {
			add(p.child("serviceAccounts", strconv.Itoa(j)), "service account %q must be written namespace/name", sa)
		}
	}
	for j, b := range r.IPBlocks {
		if _, err := ParseIPBlock(b); err != nil {
			add(p.child("ipBlocks", strconv.Itoa(j)), "%q is not an address or CIDR: %v", b, err)
		}
	}
	for j, path := range r.Paths {
		out = append(out, checkAccessPath(path, p.child("paths", strconv.Itoa(j)))...)
	}
	for j, h := range r.Hosts {
		if h == "" || strings.ContainsAny(h, "/ ") {
			add(p.child("hosts", strconv.Itoa(j)), "host %q is not a host name", h)
		}
	}
	if svc.Protocol == "tcp" && r.What() {
		add(p, "a tcp service has no paths, methods or hosts to match; rules of a tcp service name callers only")
	}
	return out
}

// checkAccessPath checks a path as access rules write it: exact, or a prefix ending in /*.
func checkAccessPath(path string, p fieldPath) []ruleIssue {
	base, _ := AccessPath(path)
	if !strings.HasPrefix(path, "/") || strings.Contains(base, "*") || strings.Contains(base, "//") {
		return []ruleIssue{{p, fmt.Sprintf("path %q must start with / and may end in /* (a prefix); * elsewhere is not a pattern every mesh reads alike", path)}}
	}
	return nil
}

// CombineIPAccess is what a route's address rule must say for the route to be held to both
// its host's rule and its own, since Contour's route rules replace the host's rather than
// add to them. It says why when no single rule can.
func CombineIPAccess(host, route *IPAccess) (*IPAccess, string) {
	if host == nil || route == nil {
		return route, ""
	}
	if host.Source != route.Source {
		return nil, fmt.Sprintf("the host judges the %s address and this route the %s one; say the same source", host.Source, route.Source)
	}
	blocks := func(l []string) []netip.Prefix {
		var out []netip.Prefix
		for _, b := range l {
			if p, err := ParseIPBlock(b); err == nil {
				out = append(out, p)
			}
		}
		return out
	}
	within := func(p, outer netip.Prefix) bool { return outer.Bits() <= p.Bits() && outer.Contains(p.Addr()) }
	switch {
	case len(host.Deny) > 0 && len(route.Deny) > 0:
		c := *route
		c.Deny = append(slices.Clone(host.Deny), route.Deny...)
		return &c, ""
	case len(host.Allow) > 0 && len(route.Allow) > 0:
		for _, b := range blocks(route.Allow) {
			if !slices.ContainsFunc(blocks(host.Allow), func(o netip.Prefix) bool { return within(b, o) }) {
				return nil, fmt.Sprintf("%s is not within the addresses the host allows (%s): a route can narrow its host's allow list, not widen it", b, strings.Join(host.Allow, ", "))
			}
		}
		return route, ""
	case len(host.Deny) > 0:
		for _, b := range blocks(route.Allow) {
			if slices.ContainsFunc(blocks(host.Deny), func(o netip.Prefix) bool { return o.Overlaps(b) }) {
				return nil, fmt.Sprintf("%s overlaps the addresses the host denies (%s): a route cannot let them back in", b, strings.Join(host.Deny, ", "))
			}
		}
		return route, ""
	}
	return nil, fmt.Sprintf("the host allows only %s; a deny list on one of its routes cannot say that too (Contour's route rules replace the host's); allow the narrower blocks on this route instead", strings.Join(host.Allow, ", "))
}
