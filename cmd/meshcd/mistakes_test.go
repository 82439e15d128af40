package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshcd/meshcd/internal/testenv"
)

// legacyRoute is the start of examples/edge's platform routes.
const legacyRoute = `routes: [
				{prefix: "/legacy", backends: [{external: {host: "legacy-api.example.net", port: 443}}], timeout: "10s"},`

// edgeMistakes are realistic edits of examples/edge, each a mistake someone makes in an edge
// design. refused names where `meshcd validate` must put it (file:line:col, then the field)
// and what it must say; an empty refused means meshcd accepts the edit, and then Contour must
// too (every HTTPProxy valid, checked by apply --wait).
var edgeMistakes = []struct {
	name, file, old, new string
	refused, says        string
}{
	{"a route twice", "designs/platform/design.cue", `{prefix: "/", backends: [{service: "frontend"}]`,
		`{prefix: "/legacy", backends: [{service: "frontend"}]}, {prefix: "/", backends: [{service: "frontend"}]`,
		`designs/platform/design.cue:\d+:\d+: ingress.hosts."www.example.com".routes\[1\].prefix`, "already matches /legacy"},
	{"the owner routes under a delegated prefix", "designs/platform/design.cue", `{prefix: "/", backends: [{service: "frontend"}]`,
		`{prefix: "/shop/cart", backends: [{service: "frontend"}]}, {prefix: "/", backends: [{service: "frontend"}]`,
		`designs/platform/design.cue:\d+:\d+: ingress.hosts."www.example.com".routes\[1\].prefix`, "delegated to namespace shop"},
	{"the whole host delegated", "designs/platform/design.cue", `{prefix: "/shop", namespace: "shop"}`, `{prefix: "/", namespace: "shop"}`,
		`designs/platform/design.cue:\d+:\d+: ingress.hosts."www.example.com".routes\[0\].prefix`, "would compete"},
	{"a delegation nobody claims", "designs/platform/design.cue", `{prefix: "/search", namespace: "search"},`,
		`{prefix: "/search", namespace: "search"}, {prefix: "/blog", namespace: "blog"},`,
		`designs/platform/design.cue:\d+:\d+: ingress.hosts."www.example.com".delegate\[2\].namespace`, "no design in namespace blog claims /blog"},
	{"a claim without a delegation", "designs/platform/design.cue", `{prefix: "/shop", namespace: "shop"},`, ``,
		`designs/shop/design.cue:\d+:\d+: ingress.claims\[0\].prefix`, "not delegated to namespace shop"},
	{"a claim on the wrong owner", "designs/shop/design.cue", `owner:  "edge"`, `owner:  "search"`,
		`designs/shop/design.cue:\d+:\d+: ingress.claims\[0\].owner`, "no design in namespace search owns host www.example.com"},
	{"two teams claim one prefix", "designs/search/design.cue", `prefix: "/search"`, `prefix: "/shop"`,
		`designs/shop/design.cue:\d+:\d+: ingress.claims\[0\].prefix`, "already claimed by design search"},
	{"a Host header beside an external upstream", "designs/platform/design.cue", `timeout: "10s"}`, `timeout: "10s", requestHeaders: set: Host: "other.example.net"}`,
		`designs/platform/design.cue:\d+:\d+: ingress.hosts."www.example.com".routes\[0\].requestHeaders.set.Host`, "already sends Host: legacy-api.example.net"},
	{"one header set twice", "designs/shop/design.cue", `requestHeaders: set: "x-team": "shop"`, `requestHeaders: set: {"x-team": "shop", "X-Team": "cart"}`,
		`designs/shop/design.cue:\d+:\d+: ingress.claims\[0\].routes\[0\].requestHeaders.set.x-team`, "case-insensitive"},
	{"timeout 0s", "designs/shop/design.cue", `timeout: "5s"`, `timeout: "0s"`,
		`designs/shop/design.cue:\d+:\d+: ingress.claims\[0\].routes\[0\].timeout`, "means no timeout to Istio"},
	{"a query in a prefix", "designs/shop/design.cue", `prefix: "/shop"`, `prefix: "/shop?x"`,
		`designs/shop/design.cue:\d+:\d+: ingress.claims\[0\].prefix`, "characters a path cannot match"},
	{"a prefix without its slash", "designs/search/design.cue", `{prefix: "/live"`, `{prefix: "live"`,
		`designs/search/design.cue:\d+:\d+: ingress.hosts."search.example.com".routes\[0\].prefix`, "must start with /"},
	{"weights that do not add up", "designs/shop/design.cue", `version: "canary", weight: 20`, `version: "canary", weight: 30`,
		`designs/shop/design.cue:\d+:\d+: ingress.claims\[0\].routes\[0\].backends`, "weights sum to 110"},
	{"a version the service lacks", "designs/shop/design.cue", `version: "canary", weight: 20`, `version: "beta", weight: 20`,
		`designs/shop/design.cue:\d+:\d+: ingress.claims\[0\].routes\[0\].backends\[1\].version`, `version "beta" is not declared`},
	{"a certificate nobody delegated", "designs/platform/design.cue", `tlsDelegations: [{secret: "wildcard-tls", to: ["search"]}]`, ``,
		`designs/search/design.cue:\d+:\d+: ingress.hosts."search.example.com".tls`, "no design there delegates it"},
	{"credentials for any origin", "designs/platform/design.cue", `allowOrigins: ["https://app.example.com"]`, `allowOrigins: ["*"]`,
		`designs/platform/design.cue:\d+:\d+: ingress.hosts."www.example.com".cors.allowOrigins\[0\]`, "browsers refuse credentials"},
	{"a redirect with backends", "designs/platform/design.cue", `{prefix: "/", backends:`, `{prefix: "/", redirect: {scheme: "https"}, backends:`,
		`designs/platform/design.cue:\d+:\d+: ingress.hosts."www.example.com".routes\[1\]`, "either redirects, answers itself (respond) or has backends"},
	{"an external upstream where Contour may not reach one", "clusters/edge.cue", `contour: externalNameServices: true`, ``,
		`designs/platform/design.cue:\d+:\d+: ingress.hosts."www.example.com".routes\[0\].backends`, "enableExternalNameService"},
	{"a rate limit only one provider keeps", "designs/search/design.cue", `"search.example.com": {`, `"search.example.com": {
			rateLimit: {requests: 50, unit: "second"}`,
		`designs/search/design.cue:\d+:\d+: ingress.hosts."search.example.com".rateLimit`, "gateway-api has no local rate limit"},
	{"a rate limit on Istio ingress without EnvoyFilters", "designs/search/design.cue", `"search.example.com": {`, `"search.example.com": {
			rateLimit: {requests: 50, unit: "second"}`,
		`designs/search/design.cue:\d+:\d+: ingress.hosts."search.example.com".rateLimit`, "only where the cluster opts in (istio: envoyFilters: true"},
	{"a second prefix for the same team", "designs/platform/design.cue", `{prefix: "/search", namespace: "search"},`,
		`{prefix: "/search", namespace: "search"}, {prefix: "/shop/admin", namespace: "search"},`,
		`designs/platform/design.cue:\d+:\d+: ingress.hosts."www.example.com".delegate\[2\].namespace`, "already gets /search on this host"},
	{"a team claiming a host twice", "designs/search/design.cue", "\tclaims: [{", "\tclaims: [{host: \"www.example.com\", prefix: \"/search/admin\", owner: \"edge\", routes: [{backends: [{service: \"query\"}]}]}, {",
		`designs/search/design.cue:\d+:\d+: ingress.claims\[1\].host`, "claims[0] already claims www.example.com"},
	{"tokens over plain HTTP", "designs/platform/design.cue", `tls: secret: "www-tls"`, `jwt: {issuer: "https://auth.example.com", jwksURI: "https://auth.example.com/jwks.json"}`,
		`designs/platform/design.cue:\d+:\d+: ingress.hosts."www.example.com".jwt`, "needs tls"},
	{"addresses allowed and denied at once", "designs/platform/design.cue", `tls: secret: "www-tls"`, `tls: secret: "www-tls"
			access: {allow: ["10.0.0.0/8"], deny: ["10.1.0.0/16"]}`,
		`designs/platform/design.cue:\d+:\d+: ingress.hosts."www.example.com".access`, "not both"},
	{"an address that is not one", "designs/platform/design.cue", `tls: secret: "www-tls"`, `tls: secret: "www-tls"
			access: deny: ["203.0.113.300"]`,
		`designs/platform/design.cue:\d+:\d+: ingress.hosts."www.example.com".access.deny\[0\]`, "not an address or CIDR"},
	{"a route allowed beyond its host", "designs/platform/design.cue", legacyRoute, `access: allow: ["10.0.0.0/8"]
			` + strings.Replace(legacyRoute, `timeout: "10s"}`, `timeout: "10s", access: allow: ["192.0.2.0/24"]}`, 1),
		`designs/platform/design.cue:\d+:\d+: ingress.hosts."www.example.com".routes\[0\].access`, "not within the addresses the host allows"},
	{"an address rule only Contour keeps", "designs/search/design.cue", `"search.example.com": {`, `"search.example.com": {
			access: deny: ["203.0.113.0/24"]`,
		`designs/search/design.cue:\d+:\d+: ingress.hosts."search.example.com".access`, "gateway-api cannot admit or refuse clients by address"},
	{"an authorization server over plain HTTP", "designs/platform/design.cue", `tls: secret: "www-tls"`, `extAuth: {service: "frontend", port: 8080}`,
		`designs/platform/design.cue:\d+:\d+: ingress.hosts."www.example.com".extAuth`, "needs tls"},
	{"an authorization server named two ways", "designs/platform/design.cue", `tls: secret: "www-tls"`, `tls: secret: "www-tls"
			extAuth: {service: "frontend", port: 8080, provider: "opa"}`,
		`designs/platform/design.cue:\d+:\d+: ingress.hosts."www.example.com".extAuth`, "say service and port"},
	{"a route left unchecked where nothing checks", "designs/platform/design.cue", `{prefix: "/", backends:`, `{prefix: "/", extAuth: false, backends:`,
		`designs/platform/design.cue:\d+:\d+: ingress.hosts."www.example.com".routes\[1\].extAuth`, "this host has none"},
	{"a team opening a route the owner never closed", "designs/shop/design.cue", `timeout: "5s"`, `timeout: "5s"
			jwt: false`,
		`designs/shop/design.cue:\d+:\d+: ingress.claims\[0\].routes\[0\].jwt`, "design platform requires none on www.example.com"},
	{"an authorization server only Contour keeps", "designs/search/design.cue", `"search.example.com": {`, `"search.example.com": {
			extAuth: {service: "query", port: 9001}`,
		`designs/search/design.cue:\d+:\d+: ingress.hosts."search.example.com".extAuth`, "experimental channel from v1.4"},
	{"a route that answers itself and has backends", "designs/platform/design.cue", `{prefix: "/", backends:`, `{prefix: "/", respond: {status: 503}, backends:`,
		`designs/platform/design.cue:\d+:\d+: ingress.hosts."www.example.com".routes\[1\]`, "one of the three"},
	{"a maintenance page Gateway API cannot give", "designs/platform/design.cue", legacyRoute, legacyRoute + `
				{prefix: "/status", respond: {status: 200, body: "ok"}},`,
		`designs/platform/design.cue:\d+:\d+: ingress.hosts."www.example.com".routes\[1\].respond`, "gateway-api has no direct response"},
	{"a header matched two ways", "designs/search/design.cue", `{prefix: "/live", backends:`, `{prefix: "/live", headers: "x-client": {prefix: "mobile/", regex: "m.*"}, backends:`,
		`designs/search/design.cue:\d+:\d+: ingress.hosts."search.example.com".routes\[0\].headers.x-client`, "exactly one of exact, prefix, regex, present or absent"},
	{"a header's absence Gateway API cannot match", "designs/search/design.cue", `{prefix: "/live", backends:`, `{prefix: "/live", headers: "x-legacy": {absent: true}, backends:`,
		`designs/search/design.cue:\d+:\d+: ingress.hosts."search.example.com".routes\[0\].headers.x-legacy`, "cannot match a header's absence"},
	{"a gRPC route with a prefix too", "designs/search/design.cue", `{prefix: "/live", backends:`, `{prefix: "/live", grpc: service: "search.v1.Live", backends:`,
		`designs/search/design.cue:\d+:\d+: ingress.hosts."search.example.com".routes\[0\].grpc`, "say one of prefix, exact, regex or grpc, not prefix and grpc"},
	{"a path matched as a prefix and exactly", "designs/search/design.cue", `{prefix: "/live", backends:`, `{prefix: "/live", exact: "/live/now", backends:`,
		`designs/search/design.cue:\d+:\d+: ingress.hosts."search.example.com".routes\[0\].exact`, "not prefix and exact"},
	{"a path regex that does not compile", "designs/search/design.cue", `{prefix: "/live", backends:`, `{regex: "/live/(", backends:`,
		`designs/search/design.cue:\d+:\d+: ingress.hosts."search.example.com".routes\[0\].regex`, "invalid regular expression"},
	{"a path regex without its slash", "designs/search/design.cue", `{prefix: "/live", backends:`, `{regex: "live/.*", backends:`,
		`designs/search/design.cue:\d+:\d+: ingress.hosts."search.example.com".routes\[0\].regex`, "must start with /"},
	{"the owner's regex over a team's prefix", "designs/platform/design.cue", legacyRoute, legacyRoute + `
				{regex: "/(shop|store)/sale", backends: [{service: "frontend"}]},`,
		`designs/platform/design.cue:\d+:\d+: ingress.hosts."www.example.com".routes\[1\].regex`, "may match paths under /shop"},
	{"the owner's exact path in a team's prefix", "designs/platform/design.cue", legacyRoute, legacyRoute + `
				{exact: "/shop/sale", backends: [{service: "frontend"}]},`,
		`designs/platform/design.cue:\d+:\d+: ingress.hosts."www.example.com".routes\[1\].exact`, "delegated to namespace shop"},
	{"a prefix rewrite of an exact path", "designs/platform/design.cue", legacyRoute, legacyRoute + `
				{exact: "/healthz", backends: [{service: "frontend"}], rewrite: prefix: "/status"},`,
		`designs/platform/design.cue:\d+:\d+: ingress.hosts."www.example.com".routes\[1\].rewrite.prefix`, "no matched prefix to replace; say rewrite.path"},
	{"a whole-path rewrite Contour cannot do", "designs/platform/design.cue", legacyRoute, legacyRoute + `
				{exact: "/healthz", backends: [{service: "frontend"}], rewrite: path: "/status"},`,
		`designs/platform/design.cue:\d+:\d+: ingress.hosts."www.example.com".routes\[1\].rewrite.path`, "contour rewrites only the prefix a route matched"},
	{"a rewrite said two ways", "designs/search/design.cue", `{prefix: "/live", backends:`, `{prefix: "/live", rewrite: {prefix: "/", path: "/stream"}, backends:`,
		`designs/search/design.cue:\d+:\d+: ingress.hosts."search.example.com".routes\[0\].rewrite`, "say one of prefix (the matched prefix), path (the whole path) or regex"},
	{"one exact path routed twice", "designs/search/design.cue", `{prefix: "/live", backends:`, `{exact: "/live/now", backends: [{service: "query"}]}, {exact: "/live/now", backends: [{service: "query"}]}, {prefix: "/live", backends:`,
		`designs/search/design.cue:\d+:\d+: ingress.hosts."search.example.com".routes\[1\].exact`, "routes[0] already matches exactly /live/now"},
	{"a team's regex under its claim, where Istio merges the team's routes into the owner's", "designs/search/design.cue", `routes: [{prefix: "/", backends: [{service: "query"}]}]`,
		`routes: [{regex: "/(q|query)/.+", backends: [{service: "query"}]}, {prefix: "/", backends: [{service: "query"}]}]`,
		`designs/search/design.cue:\d+:\d+: ingress.claims\[0\].routes\[0\].regex`, "refuses a regex there"},
	{"a query parameter matched two ways", "designs/search/design.cue", `{prefix: "/live", backends:`, `{prefix: "/live", query: lang: {prefix: "en", regex: "e.*"}, backends:`,
		`designs/search/design.cue:\d+:\d+: ingress.hosts."search.example.com".routes\[0\].query.lang`, "exactly one of exact, prefix, regex or present"},
	{"a regex rewrite only Istio renders", "designs/search/design.cue", `{prefix: "/live", backends:`, `{prefix: "/live", rewrite: regex: {match: "^/live/(.*)$", substitution: "/stream/\\1"}, backends:`,
		`designs/search/design.cue:\d+:\d+: ingress.hosts."search.example.com".routes\[0\].rewrite.regex`, "only istio renders one"},
	{"a gRPC service under a team's prefix", "designs/shop/design.cue", "\t\t\tprefix: \"/\"\n", "\t\t\tprefix: \"/\"\n\t\t\tgrpc: service: \"shop.v1.Cart\"\n",
		`designs/shop/design.cue:\d+:\d+: ingress.claims\[0\].routes\[0\].grpc`, "gRPC clients call /<service>/<method> at the host's root"},
	{"a passthrough host with routes of its own", "designs/search/design.cue", `hosts: "search.example.com": {`, `hosts: "db.example.com": {passthrough: backends: [{service: "query"}], routes: [{backends: [{service: "query"}]}]}
		hosts: "search.example.com": {`,
		`designs/search/design.cue:\d+:\d+: ingress.hosts."db.example.com".routes`, "connections go to its backends unopened"},
	// Accepted: Contour accepts them too, and routes them as the design says.
	{"a database's TLS passed through by its name", "designs/search/design.cue", `hosts: "search.example.com": {`, `hosts: "db.example.com": passthrough: backends: [{service: "query"}]
		hosts: "search.example.com": {`, "", ""},
	{"a gRPC service's calls routed by name", "designs/search/design.cue", `{prefix: "/live", backends:`,
		`{grpc: {service: "search.v1.Suggest", method: "Complete"}, backends: [{service: "query"}]}, {prefix: "/live", backends:`, "", ""},
	{"beta testers on mobile by their headers", "designs/search/design.cue", `{prefix: "/live", backends:`,
		`{prefix: "/live", headers: {"x-beta": {present: true}, "x-client": {prefix: "mobile/"}}, backends:`, "", ""},
	{"a path closed at the edge", "designs/platform/design.cue", legacyRoute, legacyRoute + `
				{prefix: "/internal", respond: {status: 403, body: "closed"}},`, "", ""},
	{"a claim written with a trailing slash", "designs/shop/design.cue", "prefix: \"/shop\"\n\t\towner", "prefix: \"/shop/\"\n\t\towner", "", ""},
	{"the canary at half", "designs/shop/design.cue", `{service: "checkout", version: "stable", weight: 80},
				{service: "checkout", version: "canary", weight: 20},`, `{service: "checkout", version: "stable", weight: 50},
				{service: "checkout", version: "canary", weight: 50},`, "", ""},
	{"a route for GETs with a query parameter", "designs/search/design.cue", `{prefix: "/live", backends:`,
		`{prefix: "/live", method: "GET", query: {mode: "stream"}, backends:`, "", ""},
	{"a health path exactly, and item pages by a regex", "designs/search/design.cue", `{prefix: "/live", backends:`,
		`{exact: "/live/health", backends: [{service: "query"}], timeout: "1s"}, {regex: "/item/[0-9]+", backends: [{service: "query"}]}, {prefix: "/live", backends:`, "", ""},
	{"a team's exact path under its claim", "designs/search/design.cue", `routes: [{prefix: "/", backends: [{service: "query"}]}]`,
		`routes: [{exact: "/", backends: [{service: "query"}]}, {prefix: "/", backends: [{service: "query"}]}]`, "", ""},
	{"a route for a query parameter's prefix and another's presence", "designs/search/design.cue", `{prefix: "/live", backends:`,
		`{prefix: "/live", query: {lang: {prefix: "en"}, debug: {present: true}}, backends: [{service: "query"}]}, {prefix: "/live", backends:`, "", ""},
	{"a second delegated team route", "designs/search/design.cue", `routes: [{prefix: "/", backends: [{service: "query"}]}]`,
		`routes: [{prefix: "/suggest", backends: [{service: "query"}], timeout: "1s"}, {prefix: "/", backends: [{service: "query"}]}]`, "", ""},
}

// TestEdgeMistakes makes each mistake in a copy of examples/edge. Refused ones fail `meshcd
// validate` at their position; accepted ones are applied to a real apiserver with the real
// Contour, where apply --wait exits 0 only when Contour marks every HTTPProxy valid.
func TestEdgeMistakes(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	var cluster *testenv.Env
	var kubeconfig string
	refused := 0
	for _, m := range edgeMistakes {
		repo := t.TempDir()
		if out, err := exec.Command("cp", "-r", "../../examples/edge/.", repo).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		path := filepath.Join(repo, m.file)
		data, err := os.ReadFile(path)
		must(t, err)
		if !bytes.Contains(data, []byte(m.old)) {
			t.Fatalf("%s: %s has no %q", m.name, m.file, m.old)
		}
		must(t, os.WriteFile(path, bytes.Replace(data, []byte(m.old), []byte(m.new), 1), 0o644))
		var out, errOut bytes.Buffer
		code := run(ctx, []string{"validate", repo}, &out, &errOut)
		if m.refused != "" {
			refused++
			re := regexp.MustCompile(`(?m)^` + m.refused + `: .*` + regexp.QuoteMeta(m.says))
			if code != 1 || !re.MatchString(out.String()) {
				t.Errorf("%s: validate exit %d, want 1 with a line matching %s\n%s%s", m.name, code, re, out.String(), errOut.String())
			}
			continue
		}
		if code != 0 {
			t.Errorf("%s: validate exit %d, want 0\n%s%s", m.name, code, out.String(), errOut.String())
			continue
		}
		if cluster == nil {
			var contour *testenv.Contour
			cluster, kubeconfig, contour = contourCluster(ctx, t)
			defer cluster.Stop()
			defer contour.Close()
		}
		out.Reset()
		errOut.Reset()
		code = run(ctx, []string{"apply", repo, "--cluster", "edge-contour", "--prune", "--wait", "--timeout", "60s", "--kubeconfig", kubeconfig}, &out, &errOut)
		if code != 0 {
			t.Errorf("%s: meshcd accepts it, but apply --wait on Contour exits %d\n%s%s", m.name, code, out.String(), errOut.String())
		}
	}
	if refused < 15 {
		t.Errorf("%d mistakes refused; the table should hold at least 15", refused)
	}
}

// contourCluster starts one cluster named like the example's Contour cluster, with the
// operator's certificates and the real Contour configured as the example's cluster says.
func contourCluster(ctx context.Context, t *testing.T) (*testenv.Env, string, *testenv.Contour) {
	t.Helper()
	env, err := testenv.Start(ctx, testenv.Options{Names: []string{"edge-contour"}})
	if err != nil {
		t.Fatal(err)
	}
	tc := env.Clusters[0]
	must(t, tc.CreateTLSSecret(ctx, "edge", "www-tls", "www.example.com"))
	must(t, tc.CreateTLSSecret(ctx, "edge", "wildcard-tls", "*.example.com"))
	must(t, tc.CreateCASecret(ctx, "edge", "partner-ca"))
	contour, err := tc.StartContour(ctx, testenv.ContourOptions{ExternalNameServices: true})
	if err != nil {
		env.Stop()
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	must(t, env.WriteKubeconfig(kubeconfig))
	return env, kubeconfig, contour
}

// TestPlatformEdgeExampleOnContour applies examples/platform-edge (a token on every route,
// rate limits, CORS, a rewritten team prefix, a mirrored canary) to a real apiserver with the
// real Contour: apply --wait exits 0 only once Contour marks every HTTPProxy valid.
func TestPlatformEdgeExampleOnContour(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cluster, kubeconfig, contour := contourCluster(ctx, t)
	defer cluster.Stop()
	defer contour.Close()
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"apply", "../../examples/platform-edge", "--all", "--wait", "--timeout", "60s", "--kubeconfig", kubeconfig}, &out, &errOut)
	if code != 0 {
		t.Fatalf("apply --wait: exit %d\n%s%s\n%s", code, out.String(), errOut.String(), contour.Log())
	}
	if !strings.Contains(out.String(), "Current") {
		t.Errorf("apply --wait printed no Current health:\n%s", out.String())
	}
}
