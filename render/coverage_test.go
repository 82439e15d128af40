package render

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshcd/meshcd/schema"
)

// ingressFeatures make one host's design use one feature of the README's provider table, keyed
// by the row's first cell. The base design is a TLS host with one route to a service.
var ingressFeatures = map[string]func(vh *schema.VirtualHost){
	"owned host":                 func(vh *schema.VirtualHost) {},
	"delegation":                 func(vh *schema.VirtualHost) { vh.Delegate = []schema.Delegation{{Prefix: "/shop", Namespace: "shop"}} },
	"TLS from another namespace": func(vh *schema.VirtualHost) { vh.TLS.Namespace = "certs" },
	"external upstream": func(vh *schema.VirtualHost) {
		vh.Routes[0].Backends = []schema.IngressBackend{{External: &schema.External{Host: "legacy.example.net", Port: 443, TLS: true}, Weight: 100}}
	},
	"path prefix": func(vh *schema.VirtualHost) {},
	"exact and regex paths (`exact: \"/healthz\"` or `regex: \"/p/[0-9]+\"` in place of `prefix`; a claim's relative to its prefix; exact paths are tried first, then regexes, then prefixes, each longest first)": func(vh *schema.VirtualHost) {
		r := vh.Routes[0]
		r.Prefix, r.Exact = "/", "/healthz"
		vh.Routes = append(vh.Routes, r)
		r.Exact, r.Regex = "", "/p/[0-9]+"
		vh.Routes = append(vh.Routes, r)
	},
	"whole-path rewrite (`rewrite.path`)": func(vh *schema.VirtualHost) {
		vh.Routes[0].Prefix, vh.Routes[0].Exact, vh.Routes[0].Rewrite = "/", "/healthz", &schema.Rewrite{Path: "/status"}
	},
	"regex rewrite (`rewrite.regex: {match, substitution}`, RE2 with `\\1` for a group)": func(vh *schema.VirtualHost) {
		vh.Routes[0].Rewrite = &schema.Rewrite{Regex: &schema.RegexRewrite{Match: "^/api/(.*)$", Substitution: "/v2/\\1"}}
	},
	"`method`, `query` (`query: {name: \"value\" | {prefix} | {regex} | {present: true}}`)": func(vh *schema.VirtualHost) {
		vh.Routes[0].Method, vh.Routes[0].Query = "GET", map[string]schema.HeaderMatch{"v": schema.ExactHeader("2"), "tab": {Prefix: "new"}, "debug": {Present: true}}
	},
	"gRPC calls by service or method (`grpc: {service, method}` in place of `prefix`; on the design's own hosts)": func(vh *schema.VirtualHost) {
		vh.Routes[0].Prefix, vh.Routes[0].GRPC = "/", &schema.GRPCMatch{Service: "shop.v1.Cart", Method: "Get"}
	},
	"header matches (`headers: {name: \"value\" | {prefix} | {regex} | {present: true} | {absent: true}}`)": func(vh *schema.VirtualHost) {
		vh.Routes[0].Headers = map[string]schema.HeaderMatch{"x-client": {Prefix: "mobile/"}, "x-beta": {Present: true}}
	},
	"path prefix rewrite": func(vh *schema.VirtualHost) { vh.Routes[0].Rewrite = &schema.Rewrite{Prefix: "/"} },
	"Host rewrite":        func(vh *schema.VirtualHost) { vh.Routes[0].Rewrite = &schema.Rewrite{Host: "api.internal"} },
	"retries":             func(vh *schema.VirtualHost) { vh.Routes[0].Retries = &schema.Retries{Attempts: 2, On: []string{"5xx"}} },
	"idle timeout and active health checks (`idleTimeout`, `healthCheck: {path, interval, timeout, unhealthyThreshold, healthyThreshold, host}` on a route)": func(vh *schema.VirtualHost) {
		vh.Routes[0].IdleTimeout = &schema.Duration{Text: "30s"}
		vh.Routes[0].HealthCheck = &schema.HealthCheck{Path: "/healthz", Interval: schema.Duration{Text: "5s"}, Timeout: schema.Duration{Text: "2s"}, UnhealthyThreshold: 3, HealthyThreshold: 2}
	},
	"direct response (`respond: {status, body}`: the edge answers, 403 to close a path, 410 or 503 for a page that is gone)": func(vh *schema.VirtualHost) {
		vh.Routes[0].Backends, vh.Routes[0].Respond = nil, &schema.Respond{Status: 403}
	},
	"redirect `port` and `prefix` (swap the matched prefix)": func(vh *schema.VirtualHost) {
		vh.Routes[0].Backends, vh.Routes[0].Redirect = nil, &schema.Redirect{Port: 8443, Status: 301}
	},
	"TLS host: plain HTTP redirected to https": func(vh *schema.VirtualHost) {},
	"TLS passthrough (`hosts.<h>.passthrough: backends: [...]`: connections go unopened to services that terminate TLS)": func(vh *schema.VirtualHost) {
		vh.TLS, vh.Routes, vh.Passthrough = nil, nil, &schema.Passthrough{Backends: []schema.IngressBackend{{Service: "app", Weight: 100}}}
	},
	"`tls.minVersion` (`\"1.2\"`, `\"1.3\"`)": func(vh *schema.VirtualHost) { vh.TLS.MinVersion = "1.3" },
	"client certificates (`tls.clientCA: {secret, optional}`: a CA Secret with `ca.crt`)": func(vh *schema.VirtualHost) {
		vh.TLS.ClientCA = &schema.ClientCA{Secret: "www-tls-cacert"}
	},
	"local rate limit (`rateLimit: {requests, unit, burst}` on a host or a route; 429 above it)": func(vh *schema.VirtualHost) {
		vh.RateLimit = &schema.RateLimit{Requests: 100, Unit: "second"}
	},
	"JWT (`hosts.<h>.jwt: {issuer, jwksURI, audiences, forward}`; `jwt: false` leaves a route open)": func(vh *schema.VirtualHost) {
		vh.JWT = &schema.JWT{Issuer: "https://auth.example.com", JWKSURI: "https://auth.example.com/jwks.json"}
	},
	"external authorization (`hosts.<h>.extAuth: {service, port, tls, failOpen, timeout}` or `{provider}` for Istio, Envoy's ext_authz over gRPC; `extAuth: false` leaves a route unchecked)": func(vh *schema.VirtualHost) {
		vh.ExtAuth = &schema.ExtAuth{Service: "authz", Port: 9001}
	},
	"address rules (`access: {allow | deny: [CIDRs], source: peer | forwarded}` on a host or a route)": func(vh *schema.VirtualHost) {
		vh.Access = &schema.IPAccess{Deny: []string{"203.0.113.0/24"}, Source: "peer"}
	},
	"CORS (`hosts.<h>.cors`: origins, methods, headers, exposed headers, max age, credentials)": func(vh *schema.VirtualHost) {
		vh.CORS = &schema.CORS{AllowOrigins: []string{"https://app.example.com"}, AllowMethods: []string{"GET"}}
	},
}

// TestREADMEProviderTableMatchesTheRenders keeps the README's ingress provider table true: for
// every row, each provider's cell says what rendering the feature does there (a cell that
// starts with "error" is a render error, with "warning" a warning, anything else a render with
// no warning), and every row has a feature here, so a row cannot be added unchecked.
func TestREADMEProviderTableMatchesTheRenders(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := providerTable(t, string(readme))
	if len(rows) < len(ingressFeatures) {
		t.Fatalf("the README's provider table has %d rows, the features here %d", len(rows), len(ingressFeatures))
	}
	providers := []string{"contour", "gateway-api", "istio"}
	for _, row := range rows {
		feature, ok := ingressFeatures[row[0]]
		if !ok {
			t.Errorf("README row %q has no feature in ingressFeatures: add one, so the row is checked", row[0])
			continue
		}
		for i, provider := range providers {
			cell := row[i+1]
			want := cellOutcome(cell)
			d, fleetDir := coverageDesign(t)
			vh := d.Ingress.Hosts["www.example.com"]
			feature(&vh)
			d.Ingress.Hosts["www.example.com"] = vh
			c := schema.Cluster{Name: provider, Mesh: schema.MeshIstio, Ingress: provider, Contour: schema.ContourConfig{ExternalNameServices: true}}
			b, err := Render(t.Context(), d, &c, Options{Revision: "r", Repo: NewRepo(os.DirFS(fleetDir))})
			got := "rendered"
			var rerr *Error
			switch {
			case errors.As(err, &rerr):
				got = "error"
			case err != nil:
				t.Fatal(err)
			case len(b.Warnings) > 0:
				got = "warning"
			}
			if got != want {
				detail := ""
				if err != nil {
					detail = err.Error()
				} else if len(b.Warnings) > 0 {
					detail = strings.Join(b.Warnings, "; ")
				}
				t.Errorf("README says %s for %q on %s (%q), the render gives %s %s", want, row[0], provider, cell, got, detail)
			}
		}
	}
}

// coverageDesign is a TLS host with one route to a service, loaded like a user's design.
func coverageDesign(t *testing.T) (*schema.Design, string) {
	t.Helper()
	dir := t.TempDir()
	for p, data := range map[string]string{
		"clusters/c.cue": `cluster: c: {mesh: "istio", ingress: "contour"}`,
		"designs/web/design.cue": `design: web: {
	namespace: "web"
	services: app: {port: 8080, versions: v1: labels: version: "v1", routes: [{to: v1: 100}]}
	ingress: hosts: "www.example.com": {
		tls: secret: "www-tls"
		routes: [{prefix: "/api", backends: [{service: "app"}]}]
	}
}`,
	} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, designs, err := schema.Load(t.Context(), os.DirFS(dir), schema.DefaultLoadOptions())
	if err != nil {
		t.Fatal(err)
	}
	return &designs[0], dir
}

// providerTable returns the rows of the README's ingress provider table (the one headed
// "| | contour | gateway-api | istio |"), each as its trimmed cells.
func providerTable(t *testing.T, readme string) [][]string {
	return readmeTable(t, readme, "| | contour | gateway-api | istio |")
}

// readmeTable returns the rows of the README table under this header line, each as its
// trimmed cells.
func readmeTable(t *testing.T, readme, header string) [][]string {
	t.Helper()
	var rows [][]string
	in := false
	for _, line := range strings.Split(readme, "\n") {
		switch {
		case strings.HasPrefix(line, header):
			in = true
		case in && strings.HasPrefix(line, "|---"):
		case in && strings.HasPrefix(line, "|"):
			cells := splitRow(line)
			if len(cells) != 4 {
				t.Fatalf("README table row with %d cells: %s", len(cells), line)
			}
			rows = append(rows, cells)
		case in:
			return rows
		}
	}
	t.Fatalf("no table headed %q in the README", header)
	return nil
}

// splitRow splits a Markdown table row on | outside backticks (cells quote `a \| b`).
func splitRow(line string) []string {
	var cells []string
	var cur strings.Builder
	code := false
	for i := 1; i < len(line); i++ {
		ch := line[i]
		switch {
		case ch == '`':
			code = !code
			cur.WriteByte(ch)
		case ch == '\\' && i+1 < len(line) && line[i+1] == '|':
			cur.WriteByte('|')
			i++
		case ch == '|' && !code:
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(ch)
		}
	}
	return cells
}

// cellOutcome is what a README table cell says a render does: an error, a warning, or a
// render with no warning, by its first word ("**error**" counts as error).
func cellOutcome(cell string) string {
	switch cell = strings.TrimPrefix(cell, "**"); {
	case strings.HasPrefix(cell, "error"):
		return "error"
	case strings.HasPrefix(cell, "warning"):
		return "warning"
	}
	return "rendered"
}

// meshFeatures make the base service use one feature of the README's mesh table, keyed by
// the row's first cell. The base is an HTTP service with two versions and a weighted route.
var meshFeatures = map[string]func(d *schema.Design, svc *schema.Service){
	"routes, matches, weights": func(d *schema.Design, svc *schema.Service) {},
	"timeouts":                 func(d *schema.Design, svc *schema.Service) { svc.Timeout = &schema.Duration{Text: "5s"} },
	"retries (`attempts`, `perTryTimeout`, conditions in `on`, status `codes`, `backoff`)": func(d *schema.Design, svc *schema.Service) {
		svc.Retries = &schema.Retries{Attempts: 2, On: []string{"5xx"}, Codes: []int{429}}
	},
	"outlier detection (`consecutive5xxErrors`, `consecutiveGatewayErrors`, interval, ejection time and percentage), connection pool (limits, `connectTimeout`, `idleTimeout`)": func(d *schema.Design, svc *schema.Service) {
		svc.OutlierDetection = &schema.OutlierDetection{Consecutive5xxErrors: 5, Interval: schema.Duration{Text: "10s"}, BaseEjectionTime: schema.Duration{Text: "30s"}, MaxEjectionPercent: 10}
	},
	"mtls": func(d *schema.Design, svc *schema.Service) { svc.MTLS = "strict" },
	"authorization `allow` (who: service accounts, namespaces, ipBlocks; what: paths, methods, ports, hosts)": func(d *schema.Design, svc *schema.Service) {
		svc.Authorization = &schema.Authorization{Allow: []schema.AccessRule{{Namespaces: []string{"web"}}, {IPBlocks: []string{"10.0.0.0/8"}}}}
	},
	"authorization `deny`": func(d *schema.Design, svc *schema.Service) {
		svc.Authorization = &schema.Authorization{Deny: []schema.AccessRule{{Namespaces: []string{"web"}, Paths: []string{"/internal/*"}}}}
	},
	"`jwt: {issuer, jwksURI, audiences, forward, from, claimsToHeaders}` on a service": func(d *schema.Design, svc *schema.Service) {
		svc.JWT = &schema.JWT{Issuer: "https://auth.example.com", JWKSURI: "https://auth.example.com/jwks.json"}
	},
	"`rateLimit: {requests, unit, burst}` on a service": func(d *schema.Design, svc *schema.Service) {
		svc.RateLimit = &schema.RateLimit{Requests: 10, Unit: "second"}
	},
	"`extAuth: {provider, skipPaths}` on a service (an external authorization server checks each request)": func(d *schema.Design, svc *schema.Service) {
		svc.ExtAuth = &schema.MeshExtAuth{Provider: "opa", SkipPaths: []string{"/healthz"}}
	},
	"fault injection": func(d *schema.Design, svc *schema.Service) {
		svc.Routes[0].Fault = &schema.Fault{Abort: &struct {
			Status  int     `json:"status"`
			Percent float64 `json:"percent"`
		}{Status: 503, Percent: 1}}
	},
	"`egress: {hosts: [{host, port, protocol: tls | http | tcp}], policy: allow-all | registry-only}`": func(d *schema.Design, svc *schema.Service) {
		d.Egress = &schema.Egress{Policy: "registry-only", Hosts: []schema.EgressHost{{Host: "api.example.net", Port: 443, Protocol: "tls"}}}
	},
	"`egress` host with `originateTLS: {service}` (the workload calls `http://<service>:<port>` in plain HTTP, and the mesh opens TLS to the host)": func(d *schema.Design, svc *schema.Service) {
		d.Egress = &schema.Egress{Policy: "allow-all", Hosts: []schema.EgressHost{{Host: "api.example.net", Port: 443, Protocol: "http", OriginateTLS: &schema.OriginateTLS{Service: "example-api"}}}}
	},
}

// TestREADMEMeshTableMatchesTheRenders keeps the README's mesh table ("What a design renders
// to") true the same way: each row's feature is rendered for each mesh, and the cell's first
// word must say what the render does; a row without a feature here fails.
func TestREADMEMeshTableMatchesTheRenders(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := readmeTable(t, string(readme), "| design | istio | linkerd | gateway-api |")
	if len(rows) < len(meshFeatures) {
		t.Fatalf("the README's mesh table has %d rows, the features here %d", len(rows), len(meshFeatures))
	}
	for _, row := range rows {
		feature, ok := meshFeatures[row[0]]
		if !ok {
			t.Errorf("README row %q has no feature in meshFeatures: add one, so the row is checked", row[0])
			continue
		}
		for i, mesh := range []schema.Mesh{schema.MeshIstio, schema.MeshLinkerd, schema.MeshGatewayAPI} {
			svc := schema.Service{Port: 8080, Protocol: "http",
				Versions: map[string]schema.Version{"v1": {Labels: map[string]string{"version": "v1"}}, "v2": {Labels: map[string]string{"version": "v2"}}},
				Routes:   []schema.Route{{To: map[string]int{"v1": 90, "v2": 10}}}}
			d := &schema.Design{Name: "shop", Namespace: "shop"}
			feature(d, &svc)
			d.Services = map[string]schema.Service{"cart": svc}
			b, err := Render(t.Context(), d, &schema.Cluster{Name: string(mesh), Mesh: mesh}, Options{Revision: "r", Repo: NewRepo(nil)})
			got, detail := "rendered", ""
			var rerr *Error
			switch {
			case errors.As(err, &rerr):
				got, detail = "error", err.Error()
			case err != nil:
				t.Fatal(err)
			case len(b.Warnings) > 0:
				got, detail = "warning", strings.Join(b.Warnings, "; ")
			}
			if want := cellOutcome(row[i+1]); got != want {
				t.Errorf("README says %s for %q on %s (%q), the render gives %s %s", want, row[0], mesh, row[i+1], got, detail)
			}
		}
	}
}
