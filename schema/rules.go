package schema

import (
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// ruleIssue is a broken cross-field rule at a path inside a design or cluster.
type ruleIssue struct {
	path fieldPath
	msg  string
}

var dns1123 = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// CronParser accepts what meshcd's scheduler runs: standard 5-field specs, an optional leading
// seconds field, and descriptors such as @hourly and @every 6h.
var CronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

func checkName(kind, name string, p fieldPath) []ruleIssue {
	if len(name) > 63 || !dns1123.MatchString(name) {
		return []ruleIssue{{p, fmt.Sprintf("%s name %q must be a DNS-1123 label: lower-case letters, digits and '-', at most 63 characters", kind, name)}}
	}
	return nil
}

func checkCluster(c *Cluster) []ruleIssue {
	return checkName("cluster", c.Name, nil)
}

// checkDesign checks every rule that relates fields of one design to each other, and returns
// all broken ones.
func checkDesign(d *Design) []ruleIssue {
	var out []ruleIssue
	add := func(p fieldPath, format string, args ...any) {
		out = append(out, ruleIssue{p, fmt.Sprintf(format, args...)})
	}
	out = append(out, checkName("design", d.Name, nil)...)
	out = append(out, checkSelector(d.Targets, fieldPath{"targets"})...)

	for _, svcName := range slices.Sorted(maps.Keys(d.Services)) {
		svc := d.Services[svcName]
		sp := fieldPath{"services", svcName}
		out = append(out, checkName("service", svcName, sp)...)
		for _, v := range slices.Sorted(maps.Keys(svc.Versions)) {
			out = append(out, checkName("version", v, sp.child("versions", v))...)
		}
		if svc.Retries != nil {
			out = append(out, checkRetries(svc.Retries, svc.Timeout, sp.child("retries"))...)
		}
		out = append(out, checkDurationPositive(svc.Timeout, sp.child("timeout"))...)
		if len(svc.Routes) == 0 && len(svc.Versions) > 1 {
			add(sp.child("routes"), "service has %d versions but no route says how traffic is split between them", len(svc.Versions))
		}
		if lb := svc.LoadBalancer; lb != nil {
			lp := sp.child("loadBalancer")
			switch {
			case (lb.Algorithm == "") == (lb.Hash == nil):
				add(lp, "say exactly one of algorithm or hash")
			case lb.Hash != nil:
				n := 0
				for _, set := range []bool{lb.Hash.Header != "", lb.Hash.Cookie != nil, lb.Hash.SourceIP} {
					if set {
						n++
					}
				}
				if n != 1 {
					add(lp.child("hash"), "hash on exactly one of header, cookie or sourceIP")
				}
				if svc.Protocol == "tcp" && (lb.Hash.Header != "" || lb.Hash.Cookie != nil) {
					add(lp.child("hash"), "a TCP service has no headers or cookies to hash on; use sourceIP")
				}
			}
		}
		for i, r := range svc.Routes {
			rp := sp.child("routes", strconv.Itoa(i))
			out = append(out, checkWeights(r.To, svc.Versions, svcName, rp.child("to"))...)
			if r.Match == nil && i != len(svc.Routes)-1 {
				add(rp, "a route without match catches all traffic, so routes after it never apply; make it the last route")
			}
			if r.Match != nil {
				out = append(out, checkMatch(r.Match, rp.child("match"))...)
			}
			if m := r.Mirror; m != nil {
				mp := rp.child("mirror")
				if _, ok := svc.Versions[m.Version]; !ok {
					add(mp.child("version"), "version %q is not declared in services.%s.versions (declared: %s)", m.Version, svcName, strings.Join(slices.Sorted(maps.Keys(svc.Versions)), ", "))
				}
				if svc.Protocol == "tcp" {
					add(mp, "a TCP route cannot be mirrored: meshes copy requests, and a TCP stream has none")
				}
			}
			out = append(out, checkDurationPositive(r.Timeout, rp.child("timeout"))...)
			timeout := r.Timeout
			if timeout == nil {
				timeout = svc.Timeout
			}
			if r.Retries != nil {
				out = append(out, checkRetries(r.Retries, timeout, rp.child("retries"))...)
			} else if svc.Retries != nil && r.Timeout != nil {
				out = append(out, checkRetries(svc.Retries, r.Timeout, rp.child("timeout"))...)
			}
			if svc.Protocol == "tcp" && (r.Match != nil || r.Retries != nil || r.Fault != nil || r.Timeout != nil) {
				add(rp, "a tcp service can only split traffic by weight; match, retries, timeout and fault need http or grpc")
			}
		}
		out = append(out, checkTokenFrom(svc.JWT, sp.child("jwt", "from"))...)
		if svc.Protocol == "tcp" && (svc.JWT != nil || svc.RateLimit != nil || svc.ExtAuth != nil) {
			add(sp, "a tcp service has no requests to check a token on, count or authorize; jwt, rateLimit and extAuth need http or grpc")
		}
		if ea := svc.ExtAuth; ea != nil {
			for j, path := range ea.SkipPaths {
				out = append(out, checkAccessPath(path, sp.child("extAuth", "skipPaths", strconv.Itoa(j)))...)
			}
		}
		if svc.Protocol == "grpc" {
			const grpcCodes = "a gRPC call answers HTTP 200 whatever its status; retry on gRPC statuses in on (unavailable, cancelled, deadline-exceeded)"
			if svc.Retries != nil && len(svc.Retries.Codes) > 0 {
				add(sp.child("retries", "codes"), grpcCodes)
			}
			for i, r := range svc.Routes {
				if r.Retries != nil && len(r.Retries.Codes) > 0 {
					add(sp.child("routes", strconv.Itoa(i), "retries", "codes"), grpcCodes)
				}
			}
		}
		if a := svc.Authorization; a != nil {
			for i, r := range a.Allow {
				out = append(out, checkAccessRule(r, svc, sp.child("authorization", "allow", strconv.Itoa(i)))...)
			}
			for i, r := range a.Deny {
				out = append(out, checkAccessRule(r, svc, sp.child("authorization", "deny", strconv.Itoa(i)))...)
			}
		}
	}

	if e := d.Egress; e != nil {
		seen, services := map[string]int{}, map[string]int{}
		for i, h := range e.Hosts {
			hp := fieldPath{"egress", "hosts", strconv.Itoa(i)}
			out = append(out, checkFQDN(h.Host, hp.child("host"))...)
			key := fmt.Sprintf("%s:%d", h.Host, h.Port)
			if j, dup := seen[key]; dup {
				add(hp, "hosts[%d] already names %s", j, key)
			}
			seen[key] = i
			if strings.HasPrefix(h.Host, "*.") && h.Protocol == "http" {
				add(hp.child("host"), "a wildcard host is matched by TLS's server name; plain HTTP to it has no single address to resolve (say protocol: \"tls\", or name the hosts)")
			}
			if o := h.OriginateTLS; o != nil {
				op := hp.child("originateTLS")
				if h.Protocol != "http" { // a wildcard host is already refused for http above
					add(op, "the mesh opens TLS for a workload that speaks plain HTTP: say protocol: \"http\" (a workload that speaks %s itself needs no origination)", strings.ToUpper(h.Protocol))
				}
				if _, taken := d.Services[o.Service]; taken {
					add(op.child("service"), "services.%s is already a Service of the namespace; the Service for %s needs a name of its own", o.Service, h.Host)
				}
				if j, dup := services[o.Service]; dup {
					add(op.child("service"), "hosts[%d] already calls its Service %s", j, o.Service)
				}
				services[o.Service] = i
			}
		}
	}

	for i, m := range d.Manifests {
		out = append(out, checkManifest(m, fieldPath{"manifests", strconv.Itoa(i)})...)
	}

	for i, o := range d.Overrides {
		op := fieldPath{"overrides", strconv.Itoa(i)}
		switch {
		case o.Cluster == "" && o.Selector == nil:
			add(op, "an override must name a cluster or a selector")
		case o.Cluster != "" && o.Selector != nil:
			add(op, "an override names either a cluster or a selector, not both")
		case o.Selector != nil:
			out = append(out, checkSelector(*o.Selector, op.child("selector"))...)
		}
		for _, svcName := range slices.Sorted(maps.Keys(o.Services)) {
			so := o.Services[svcName]
			svc, ok := d.Services[svcName]
			if !ok {
				add(op.child("services", svcName), "service %q is not declared in services", svcName)
				continue
			}
			if so.Weights != nil {
				out = append(out, checkWeights(so.Weights, svc.Versions, svcName, op.child("services", svcName, "weights"))...)
				if len(svc.Routes) == 0 {
					add(op.child("services", svcName, "weights"), "service %q has no route whose weights could be overridden", svcName)
				}
			}
		}
		for j, p := range o.Patches {
			if strings.TrimSpace(p.Patch) == "" {
				add(op.child("patches", strconv.Itoa(j), "patch"), "patch is empty")
			}
		}
	}

	for _, gName := range slices.Sorted(maps.Keys(d.Gates)) {
		g := d.Gates[gName]
		out = append(out, checkGate(d, gName, g, fieldPath{"gates", gName})...)
	}

	out = append(out, checkIngress(d)...)

	for i, r := range d.Sync.Ignore {
		for j, p := range r.Paths {
			if !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, ".") {
				add(fieldPath{"sync", "ignore", strconv.Itoa(i), "paths", strconv.Itoa(j)}, "ignore path %q must be a JSON pointer (/spec/replicas) or a field path (.spec.replicas)", p)
			}
		}
	}
	return out
}

func checkWeights(to map[string]int, versions map[string]Version, svc string, p fieldPath) []ruleIssue {
	var out []ruleIssue
	if len(to) == 0 {
		return []ruleIssue{{p, "a route must send traffic to at least one version"}}
	}
	sum := 0
	for _, v := range slices.Sorted(maps.Keys(to)) {
		sum += to[v]
		if _, ok := versions[v]; !ok {
			out = append(out, ruleIssue{p.child(v), fmt.Sprintf("version %q is not declared in services.%s.versions (declared: %s)", v, svc, strings.Join(slices.Sorted(maps.Keys(versions)), ", "))})
		}
	}
	if sum != 100 {
		out = append(out, ruleIssue{p, fmt.Sprintf("weights sum to %d, want 100", sum)})
	}
	return out
}

func checkMatch(m *Match, p fieldPath) []ruleIssue {
	var out []ruleIssue
	check := func(sm StringMatch, p fieldPath) {
		n := 0
		for _, s := range []*string{sm.Exact, sm.Prefix, sm.Regex} {
			if s != nil {
				n++
			}
		}
		if n != 1 {
			out = append(out, ruleIssue{p, "say exactly one of exact, prefix or regex"})
			return
		}
		if sm.Regex != nil {
			if _, err := regexp.Compile(*sm.Regex); err != nil {
				out = append(out, ruleIssue{p.child("regex"), fmt.Sprintf("invalid regular expression: %v", err)})
			}
		}
		if sm.Prefix != nil && p[len(p)-1] == "path" && !strings.HasPrefix(*sm.Prefix, "/") {
			out = append(out, ruleIssue{p.child("prefix"), fmt.Sprintf("path prefix %q must start with /", *sm.Prefix)})
		}
		if sm.Exact != nil && p[len(p)-1] == "path" && !strings.HasPrefix(*sm.Exact, "/") {
			out = append(out, ruleIssue{p.child("exact"), fmt.Sprintf("path %q must start with /", *sm.Exact)})
		}
	}
	if m.Path != nil {
		check(*m.Path, p.child("path"))
	}
	for _, h := range slices.Sorted(maps.Keys(m.Headers)) {
		check(m.Headers[h], p.child("headers", h))
	}
	return out
}

func checkRetries(r *Retries, timeout *Duration, p fieldPath) []ruleIssue {
	var out []ruleIssue
	out = append(out, checkDurationPositive(r.Backoff, p.child("backoff"))...)
	if r.PerTryTimeout != nil {
		out = append(out, checkDurationPositive(r.PerTryTimeout, p.child("perTryTimeout"))...)
		if timeout != nil && timeout.Duration > 0 && r.PerTryTimeout.Duration > 0 {
			budget := time.Duration(r.Attempts) * r.PerTryTimeout.Duration
			if budget > timeout.Duration {
				out = append(out, ruleIssue{p, fmt.Sprintf("retry budget %d × %s = %s does not fit the %s timeout", r.Attempts, r.PerTryTimeout.Text, budget, timeout.Text)})
			}
		}
	}
	return out
}

func checkDurationPositive(d *Duration, p fieldPath) []ruleIssue {
	if d != nil && d.Duration <= 0 {
		return []ruleIssue{{p, fmt.Sprintf("duration %q must be positive", d.Text)}}
	}
	return nil
}

func checkSelector(s Selector, p fieldPath) []ruleIssue {
	var out []ruleIssue
	for i, r := range s.MatchExpressions {
		rp := p.child("matchExpressions", strconv.Itoa(i))
		switch r.Operator {
		case "In", "NotIn":
			if len(r.Values) == 0 {
				out = append(out, ruleIssue{rp.child("values"), fmt.Sprintf("operator %s needs at least one value", r.Operator)})
			}
		case "Exists", "DoesNotExist":
			if len(r.Values) > 0 {
				out = append(out, ruleIssue{rp.child("values"), fmt.Sprintf("operator %s takes no values", r.Operator)})
			}
		}
	}
	return out
}

func checkManifest(m Manifest, p fieldPath) []ruleIssue {
	var out []ruleIssue
	var kinds []string
	if m.Kustomize != "" {
		kinds = append(kinds, "kustomize")
		out = append(out, checkRepoPath(m.Kustomize, p.child("kustomize"))...)
	}
	if m.Helm != nil {
		kinds = append(kinds, "helm")
		out = append(out, checkRepoPath(m.Helm.Chart, p.child("helm", "chart"))...)
		for i, f := range m.Helm.ValueFiles {
			out = append(out, checkRepoPath(f, p.child("helm", "valueFiles", strconv.Itoa(i)))...)
		}
	}
	if m.YAML != "" {
		kinds = append(kinds, "yaml")
		out = append(out, checkRepoPath(m.YAML, p.child("yaml"))...)
	}
	if len(kinds) != 1 {
		out = append(out, ruleIssue{p, fmt.Sprintf("a manifest is exactly one of kustomize, helm or yaml (found %d: %s)", len(kinds), strings.Join(kinds, ", "))})
	}
	return out
}

// checkRepoPath refuses paths that could leave the repo or reach the network. Links are
// checked when the renderer reads the files.
func checkRepoPath(p string, at fieldPath) []ruleIssue {
	switch {
	case p == "":
		return []ruleIssue{{at, "path is empty"}}
	case strings.Contains(p, "://") || strings.HasPrefix(p, "git@") || strings.HasPrefix(p, "oci:"):
		return []ruleIssue{{at, fmt.Sprintf("%q is a remote address; manifests must live in the repo", p)}}
	case path.IsAbs(p) || strings.HasPrefix(p, "\\"):
		return []ruleIssue{{at, fmt.Sprintf("%q is an absolute path; use a path relative to the design's folder", p)}}
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return []ruleIssue{{at, fmt.Sprintf("%q leaves the design's folder (..); keep manifests inside it", p)}}
		}
	}
	return nil
}

func checkGate(d *Design, name string, g Gate, p fieldPath) []ruleIssue {
	var out []ruleIssue
	add := func(p fieldPath, format string, args ...any) {
		out = append(out, ruleIssue{p, fmt.Sprintf(format, args...)})
	}
	out = append(out, checkName("gate", name, p)...)
	switch {
	case g.URL == "" && g.GRPC == nil && (g.Compare == nil || len(g.Compare.URLs) == 0):
		add(p.child("url"), "say what the gate loads: url (HTTP), grpc, or compare.urls")
	case g.URL != "" && g.GRPC != nil:
		add(p.child("grpc"), "a gate loads one target: url or grpc, not both")
	case g.GRPC != nil:
		if g.GRPC.Ping && g.GRPC.Method != "" {
			add(p.child("grpc", "method"), "ping and method are two ways to load: choose one")
		}
		if g.GRPC.Service != "" && (g.GRPC.Ping || g.GRPC.Method != "") {
			add(p.child("grpc", "service"), "service names the health service to check; it does not go with ping or method")
		}
		if g.Compare != nil {
			add(p.child("compare"), "side-by-side gates load HTTP targets; a gRPC gate compares against its history (baseline)")
		}
		if g.PreviewURL != "" {
			add(p.child("previewURL"), "previewURL is an HTTP target; a gRPC gate runs against its grpc.target")
		}
	}
	if g.Load.Duration == nil && g.Load.Requests == 0 {
		add(p.child("load"), "say how long the load runs: duration or requests")
	}
	out = append(out, checkDurationPositive(g.Load.Duration, p.child("load", "duration"))...)
	th := g.Thresholds
	for _, t := range []struct {
		name string
		d    *Duration
	}{{"p50", th.P50}, {"p90", th.P90}, {"p99", th.P99}} {
		out = append(out, checkDurationPositive(t.d, p.child("thresholds", t.name))...)
	}
	order := []struct {
		name string
		d    *Duration
	}{{"p50", th.P50}, {"p90", th.P90}, {"p99", th.P99}}
	var prev *struct {
		name string
		d    *Duration
	}
	for i := range order {
		if order[i].d == nil {
			continue
		}
		if prev != nil && order[i].d.Duration < prev.d.Duration {
			add(p.child("thresholds", order[i].name), "%s threshold %s is below the %s threshold %s; want p50 ≤ p90 ≤ p99", order[i].name, order[i].d.Text, prev.name, prev.d.Text)
		}
		prev = &order[i]
	}
	if th.P50 == nil && th.P90 == nil && th.P99 == nil && th.ErrorRate == nil && th.MinQPSRatio == nil && g.Baseline == nil && g.Compare == nil {
		add(p.child("thresholds"), "a gate needs at least one threshold, a baseline or a compare, or it can never fail")
	}
	hasCron := false
	for _, t := range g.Triggers {
		hasCron = hasCron || t == "cron"
	}
	if g.Schedule != "" {
		if _, err := CronParser.Parse(g.Schedule); err != nil {
			add(p.child("schedule"), "invalid cron schedule %q: %v", g.Schedule, err)
		}
		if !hasCron {
			add(p.child("triggers"), "schedule is set but triggers does not include \"cron\"")
		}
	} else if hasCron {
		add(p.child("schedule"), "trigger \"cron\" needs a schedule")
	}
	if c := g.Compare; c != nil {
		cp := p.child("compare")
		if c.Baseline == c.Candidate {
			add(cp.child("candidate"), "the candidate is the baseline version %q: compare two versions", c.Baseline)
		}
		if len(c.URLs) > 0 {
			for _, v := range []string{c.Baseline, c.Candidate} {
				if _, ok := c.URLs[v]; !ok {
					add(cp.child("urls"), "no url for version %q", v)
				}
			}
		} else if !strings.Contains(g.URL, "{version}") && g.GRPC == nil {
			add(p.child("url"), "a side-by-side gate needs each version's target: put {version} in url, or give compare.urls")
		}
		if g.PreviewURL != "" && len(c.URLs) == 0 && !strings.Contains(g.PreviewURL, "{version}") {
			add(p.child("previewURL"), "a side-by-side gate's previewURL needs {version} too")
		}
		if g.Rollout != nil && g.Rollout.Version != c.Candidate {
			add(cp.child("candidate"), "the rollout moves version %q, so the gate must judge it: candidate %q", g.Rollout.Version, c.Candidate)
		}
		declared := false
		for _, svc := range d.Services {
			_, okB := svc.Versions[c.Baseline]
			_, okC := svc.Versions[c.Candidate]
			declared = declared || okB && okC
		}
		if len(d.Services) > 0 && !declared {
			add(cp, "no service declares both versions %q and %q", c.Baseline, c.Candidate)
		}
		out = append(out, checkDurationPositive(c.Slice, cp.child("slice"))...)
	} else if strings.Contains(g.URL, "{version}") {
		add(p.child("url"), "{version} in url means a side-by-side gate: add compare {baseline, candidate}")
	}
	if g.Rollout != nil {
		rp := p.child("rollout")
		svc, ok := d.Services[g.Rollout.Service]
		if !ok {
			add(rp.child("service"), "service %q is not declared in services", g.Rollout.Service)
		} else if _, ok := svc.Versions[g.Rollout.Version]; !ok {
			add(rp.child("version"), "version %q is not declared in services.%s.versions", g.Rollout.Version, g.Rollout.Service)
		}
		if len(g.Rollout.Steps) == 0 {
			add(rp.child("steps"), "a rollout needs at least one step")
		}
		for i := 1; i < len(g.Rollout.Steps); i++ {
			if g.Rollout.Steps[i] <= g.Rollout.Steps[i-1] {
				add(rp.child("steps", strconv.Itoa(i)), "rollout steps must increase: %d follows %d", g.Rollout.Steps[i], g.Rollout.Steps[i-1])
			}
		}
		if c := g.Rollout.Current; c != nil && *c != 0 && !slices.Contains(g.Rollout.Steps, *c) {
			add(rp.child("current"), "current weight %d is not one of the steps %v", *c, g.Rollout.Steps)
		}
	}
	return out
}
