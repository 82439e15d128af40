package schema

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/meshcd/meshcd/internal/race"
)

const clusterEast = "cluster: east: {\n\tlabels: env: \"prod\"\n\tmesh: \"istio\"\n}\n"

// design wraps the body of a shop design (each line indented by one tab) so that line numbers
// in expectations count from the body's first line, which is line 4 of the file.
func design(body string) string {
	return "design: shop: {\n\tnamespace: \"shop\"\n\ttargets: matchLabels: env: \"prod\"\n" + body + "}\n"
}

const svc = "\tservices: checkout: {\n\t\tport: 8080\n\t\tversions: {stable: labels: v: \"1\", canary: labels: v: \"2\"}\n"

func load(t *testing.T, files map[string]string) ([]Design, []string) {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, data := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(data)}
	}
	_, designs, err := Load(context.Background(), fsys, DefaultLoadOptions())
	if err == nil {
		return designs, nil
	}
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("Load: %v (want a *ValidationError or nothing)", err)
	}
	var got []string
	for _, is := range verr.Issues {
		got = append(got, is.String())
	}
	return nil, got
}

func TestRules(t *testing.T) {
	const f = "designs/shop/design.cue"
	tests := []struct {
		name string
		body string
		want []string // nil: valid
	}{
		{"weights sum to 100", svc + "\t\troutes: [{to: {stable: 90, canary: 10}}]\n\t}\n", nil},
		{"weights short of 100", svc + "\t\troutes: [{to: {stable: 80, canary: 10}}]\n\t}\n",
			[]string{f + ":7:13: services.checkout.routes[0].to: weights sum to 90, want 100"}},
		{"destination not declared", svc + "\t\troutes: [{to: {stable: 90, beta: 10}}]\n\t}\n",
			[]string{f + ":7:30: services.checkout.routes[0].to.beta: version \"beta\" is not declared in services.checkout.versions (declared: canary, stable)"}},
		{"duration syntax", svc + "\t\troutes: [{to: stable: 100}]\n\t\ttimeout: \"5 sec\"\n\t}\n",
			[]string{f + ":8:12: services.checkout.timeout: \"5 sec\" is not a duration; write it like 300ms, 5s or 1h30m"}},
		{"duration positive", svc + "\t\troutes: [{to: stable: 100}]\n\t\ttimeout: \"0s\"\n\t}\n",
			[]string{f + ":8:3: services.checkout.timeout: duration \"0s\" must be positive"}},
		{"retry budget fits", svc + "\t\troutes: [{to: stable: 100}]\n\t\tretries: {attempts: 2, perTryTimeout: \"2s\"}\n\t\ttimeout: \"5s\"\n\t}\n", nil},
		{"retry budget too big", svc + "\t\troutes: [{to: stable: 100, timeout: \"1s\", retries: {attempts: 3, perTryTimeout: \"500ms\"}}]\n\t}\n",
			[]string{f + ":7:45: services.checkout.routes[0].retries: retry budget 3 × 500ms = 1.5s does not fit the 1s timeout"}},
		{"service name DNS-1123", "\tservices: Check_out: {port: 80, versions: a: labels: x: \"y\", routes: [{to: a: 100}]}\n",
			[]string{f + ":4:12: services.Check_out: service name \"Check_out\" must be a DNS-1123 label: lower-case letters, digits and '-', at most 63 characters"}},
		{"unknown field", svc + "\t\troutes: [{to: stable: 100}]\n\t\tretry: {attempts: 3}\n\t}\n",
			[]string{f + ":8:3: services.checkout.retry: field not allowed"}},
		{"mtls enum", svc + "\t\troutes: [{to: stable: 100}]\n\t\tmtls: \"on\"\n\t}\n",
			[]string{f + ":8:3: services.checkout.mtls: \"on\" is not one of \"disabled\", \"permissive\", \"strict\""}},
		{"catch-all route must be last", svc + "\t\troutes: [{to: stable: 100}, {match: method: \"GET\", to: canary: 100}]\n\t}\n",
			[]string{f + ":7:12: services.checkout.routes[0]: a route without match catches all traffic, so routes after it never apply; make it the last route"}},
		{"header regex", svc + "\t\troutes: [{match: headers: x: {regex: \"(\"}, to: stable: 100}]\n\t}\n",
			[]string{f + ":7:33: services.checkout.routes[0].match.headers.x.regex: invalid regular expression: error parsing regexp: missing closing ): `(`"}},
		{"thresholds in order", "\tgates: g: {url: \"http://x/\", load: duration: \"10s\", thresholds: {p50: \"10ms\", p90: \"20ms\", p99: \"30ms\"}}\n", nil},
		{"thresholds out of order", "\tgates: g: {url: \"http://x/\", load: duration: \"10s\", thresholds: {p50: \"10ms\", p90: \"50ms\", p99: \"30ms\"}}\n",
			[]string{f + ":4:93: gates.g.thresholds.p99: p99 threshold 30ms is below the p90 threshold 50ms; want p50 ≤ p90 ≤ p99"}},
		{"cron descriptors and seconds", "\tgates: g: {url: \"http://x/\", load: duration: \"10s\", thresholds: p99: \"1s\", schedule: \"@every 6h\", triggers: [\"cron\"]}\n" +
			"\tgates: h: {url: \"http://x/\", load: duration: \"10s\", thresholds: p99: \"1s\", schedule: \"30 0 */2 * * *\", triggers: [\"cron\"]}\n", nil},
		{"cron invalid", "\tgates: g: {url: \"http://x/\", load: duration: \"10s\", thresholds: p99: \"1s\", schedule: \"61 * * * *\", triggers: [\"cron\"]}\n",
			[]string{f + ":4:77: gates.g.schedule: invalid cron schedule \"61 * * * *\": end of range (61) above maximum (59): 61"}},
		{"schedule without cron trigger", "\tgates: g: {url: \"http://x/\", load: duration: \"10s\", thresholds: p99: \"1s\", schedule: \"@hourly\"}\n",
			[]string{f + ":4:9: gates.g.triggers: schedule is set but triggers does not include \"cron\""}},
		{"gate that cannot fail", "\tgates: g: {url: \"http://x/\", load: duration: \"10s\", thresholds: {}}\n",
			[]string{f + ":4:54: gates.g.thresholds: a gate needs at least one threshold, a baseline or a compare, or it can never fail"}},
		{"rollout steps increase", svc + "\t\troutes: [{to: {stable: 90, canary: 10}}]\n\t}\n\tgates: g: {url: \"http://x/\", load: duration: \"10s\", thresholds: p99: \"1s\", rollout: {service: \"checkout\", version: \"canary\", steps: [10, 50, 30]}}\n",
			[]string{f + ":9:143: gates.g.rollout.steps[2]: rollout steps must increase: 30 follows 50"}},
		{"manifest kinds", "\tmanifests: [{kustomize: \"./base\"}, {helm: chart: \"./chart\"}, {yaml: \"./raw\"}]\n", nil},
		{"manifest escapes", "\tmanifests: [{kustomize: \"../other\"}]\n",
			[]string{f + ":4:15: manifests[0].kustomize: \"../other\" leaves the design's folder (..); keep manifests inside it"}},
		{"override needs a target", svc + "\t\troutes: [{to: {stable: 90, canary: 10}}]\n\t}\n\toverrides: [{services: checkout: weights: {stable: 50, canary: 50}}]\n",
			[]string{f + ":9:14: overrides[0]: an override must name a cluster or a selector"}},
		{"override weights", svc + "\t\troutes: [{to: {stable: 90, canary: 10}}]\n\t}\n\toverrides: [{cluster: \"east\", services: checkout: weights: {stable: 50, canary: 40}}]\n",
			[]string{f + ":9:52: overrides[0].services.checkout.weights: weights sum to 90, want 100"}},
		{"selector In needs values", "\ttargets: matchExpressions: [{key: \"env\", operator: \"In\"}]\n",
			[]string{f + ":4:30: targets.matchExpressions[0].values: operator In needs at least one value"}},
		{"selector operator enum", "\ttargets: matchExpressions: [{key: \"env\", operator: \"Is\", values: [\"x\"]}]\n",
			[]string{f + ":4:43: targets.matchExpressions[0].operator: \"Is\" is not one of \"DoesNotExist\", \"Exists\", \"In\", \"NotIn\""}},
		{"tcp routes split only", "\tservices: db: {port: 5432, protocol: \"tcp\", versions: a: labels: x: \"y\", routes: [{to: a: 100, timeout: \"1s\"}]}\n",
			[]string{f + ":4:84: services.db.routes[0]: a tcp service can only split traffic by weight; match, retries, timeout and fault need http or grpc"}},
		{"authorization service account form", svc + "\t\troutes: [{to: stable: 100}]\n\t\tauthorization: allow: [{serviceAccounts: [\"frontend\"]}]\n\t}\n",
			[]string{f + ":8:45: services.checkout.authorization.allow[0].serviceAccounts[0]: service account \"frontend\" must be written namespace/name"}},
		{"token from a query parameter with a prefix", svc + "\t\troutes: [{to: stable: 100}]\n\t\tjwt: {issuer: \"i\", jwksURI: \"https://i/k\", from: {query: \"t\", prefix: \"B \"}}\n\t}\n",
			[]string{f + ":8:65: services.checkout.jwt.from.prefix: a prefix is part of a header's value; a query parameter has none"}},
		{"retry codes and backoff", svc + "\t\troutes: [{to: stable: 100, retries: {attempts: 2, codes: [429, 503], backoff: \"50ms\"}}]\n\t}\n", nil},
		{"retry codes of a grpc service", "\tservices: api: {port: 9090, protocol: \"grpc\", versions: a: labels: x: \"y\", routes: [{to: a: 100}], retries: {attempts: 2, codes: [503]}}\n",
			[]string{f + ":4:124: services.api.retries.codes: a gRPC call answers HTTP 200 whatever its status; retry on gRPC statuses in on (unavailable, cancelled, deadline-exceeded)"}},
		{"egress hosts", "\tegress: {hosts: [{host: \"api.example.net\"}, {host: \"*.googleapis.com\"}, {host: \"feed.example.org\", port: 80, protocol: \"http\"}], policy: \"registry-only\"}\n", nil},
		{"egress host mistakes", "\tegress: hosts: [{host: \"API.example.net\"}, {host: \"*.example.org\", protocol: \"http\"}, {host: \"*.example.org\", protocol: \"http\"}]\n",
			[]string{
				f + ":4:19: egress.hosts[0].host: \"API.example.net\" is not a fully qualified domain name (lower case, dot-separated labels, like shop.example.com)",
				f + ":4:46: egress.hosts[1].host: a wildcard host is matched by TLS's server name; plain HTTP to it has no single address to resolve (say protocol: \"tls\", or name the hosts)",
				f + ":4:88: egress.hosts[2]: hosts[1] already names *.example.org:443",
				f + ":4:89: egress.hosts[2].host: a wildcard host is matched by TLS's server name; plain HTTP to it has no single address to resolve (say protocol: \"tls\", or name the hosts)",
			}},
		{"egress TLS origination", "\tegress: hosts: [{host: \"api.example.net\", protocol: \"http\", originateTLS: service: \"payments-api\"}]\n", nil},
		{"egress TLS origination mistakes", svc + "\t\troutes: [{to: stable: 100}]\n\t}\n" +
			"\tegress: hosts: [{host: \"api.example.net\", originateTLS: service: \"pay\"}, {host: \"fx.example.org\", protocol: \"http\", originateTLS: service: \"pay\"}, {host: \"db.example.net\", protocol: \"http\", originateTLS: service: \"checkout\"}]\n",
			[]string{
				f + ":9:44: egress.hosts[0].originateTLS: the mesh opens TLS for a workload that speaks plain HTTP: say protocol: \"http\" (a workload that speaks TLS itself needs no origination)",
				f + ":9:132: egress.hosts[1].originateTLS.service: hosts[0] already calls its Service pay",
				f + ":9:206: egress.hosts[2].originateTLS.service: services.checkout is already a Service of the namespace; the Service for db.example.net needs a name of its own",
			}},
		{"authorization by path, method, address and port", svc + "\t\troutes: [{to: stable: 100}]\n\t\tauthorization: {\n" +
			"\t\t\tallow: [{namespaces: [\"shop\"], methods: [\"GET\"], paths: [\"/api/*\", \"/healthz\"]}, {ipBlocks: [\"10.0.0.0/8\", \"192.0.2.7\"], ports: [8080]}]\n" +
			"\t\t\tdeny: [{paths: [\"/internal/*\"], hosts: [\"checkout.shop\"]}]\n\t\t}\n\t}\n", nil},
		{"authorization rule that names nothing", svc + "\t\troutes: [{to: stable: 100}]\n\t\tauthorization: deny: [{}]\n\t}\n",
			[]string{f + ":8:25: services.checkout.authorization.deny[0]: a rule must name who (serviceAccounts, namespaces, ipBlocks) or what (paths, methods, ports, hosts); an empty rule would match every request"}},
		{"authorization rule with accounts and namespaces", svc + "\t\troutes: [{to: stable: 100}]\n\t\tauthorization: allow: [{serviceAccounts: [\"shop/web\"], namespaces: [\"ops\"]}]\n\t}\n",
			[]string{f + ":8:26: services.checkout.authorization.allow[0]: name serviceAccounts or namespaces in one rule, not both: a service account already belongs to one namespace (write two rules to allow either)"}},
		{"authorization address and path patterns", svc + "\t\troutes: [{to: stable: 100}]\n\t\tauthorization: allow: [{ipBlocks: [\"10.0.0.1/8\"], paths: [\"/api*\"]}]\n\t}\n",
			[]string{
				f + ":8:38: services.checkout.authorization.allow[0].ipBlocks[0]: \"10.0.0.1/8\" is not an address or CIDR: 10.0.0.1/8 has host bits set (the block is 10.0.0.0/8)",
				f + ":8:61: services.checkout.authorization.allow[0].paths[0]: path \"/api*\" must start with / and may end in /* (a prefix); * elsewhere is not a pattern every mesh reads alike",
			}},
		{"authorization of a tcp service by path", "\tservices: db: {port: 5432, protocol: \"tcp\", versions: a: labels: x: \"y\", routes: [{to: a: 100}], authorization: allow: [{namespaces: [\"shop\"], paths: [\"/x\"]}]}\n",
			[]string{f + ":4:122: services.db.authorization.allow[0]: a tcp service has no paths, methods or hosts to match; rules of a tcp service name callers only"}},
		{"external authorization skipping probes", svc + "\t\troutes: [{to: stable: 100}]\n\t\textAuth: {provider: \"opa\", skipPaths: [\"/healthz\", \"/debug/*\"]}\n\t}\n", nil},
		{"external authorization path pattern", svc + "\t\troutes: [{to: stable: 100}]\n\t\textAuth: {provider: \"opa\", skipPaths: [\"/debug*\"]}\n\t}\n",
			[]string{f + ":8:42: services.checkout.extAuth.skipPaths[0]: path \"/debug*\" must start with / and may end in /* (a prefix); * elsewhere is not a pattern every mesh reads alike"}},
		{"external authorization of a tcp service", "\tservices: db: {port: 5432, protocol: \"tcp\", versions: a: labels: x: \"y\", routes: [{to: a: 100}], extAuth: provider: \"opa\"}\n",
			[]string{f + ":4:12: services.db: a tcp service has no requests to check a token on, count or authorize; jwt, rateLimit and extAuth need http or grpc"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, got := load(t, map[string]string{"clusters/east.cue": clusterEast, f: design(tc.body)})
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("issues (-want +got):\n%s\nfile:\n%s", diff, design(tc.body))
			}
		})
	}
}

func TestLoadReportsEveryProblemAtOnce(t *testing.T) {
	_, got := load(t, map[string]string{
		"clusters/east.cue":       "cluster: east: {mesh: \"consul\"}\n",
		"clusters/west.cue":       "cluster: west: {mesh: \"istio\", labels: {env: 1}}\n",
		"designs/shop/design.cue": "design: shop: {\n\ttargets: {}\n\tservices: a: {port: 0, versions: v: labels: x: \"y\", routes: [{to: v: 100}]}\n}\n",
		"designs/cart/design.cue": design(svc + "\t\troutes: [{to: {stable: 50, canary: 10}}, {to: {stable: 50, beta: 50}}]\n\t}\n"),
	})
	want := []string{
		"clusters/east.cue:1:17: east.mesh: \"consul\" is not one of \"gateway-api\", \"istio\", \"linkerd\"",
		"clusters/west.cue:1:46: west.labels.env: 1 is an int, want string",
		"designs/cart/design.cue:1:9: design.shop: a file in designs/cart may only define design \"cart\"",
		"designs/shop/design.cue:1:9: namespace: required field is missing",
		"designs/shop/design.cue:3:22: services.a.port: invalid value 0 (out of bound >=1)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("issues (-want +got):\n%s", diff)
	}
}

func TestLoadDecodesDesignsWithDefaults(t *testing.T) {
	designs, issues := load(t, map[string]string{
		"clusters/east.cue":       clusterEast,
		"designs/shop/design.cue": design(svc + "\t\troutes: [{match: headers: \"x-canary\": \"true\", to: canary: 100}, {to: {stable: 90, canary: 10}}]\n\t\ttimeout: \"5s\"\n\t}\n"),
		"designs/search/design.yaml": "namespace: search\ntargets: {matchLabels: {env: prod}}\nservices:\n  query:\n    port: 80\n" +
			"    versions: {stable: {labels: {v: '1'}}}\n    routes: [{to: {stable: 100}}]\nsync: {drift: report}\n",
	})
	if issues != nil {
		t.Fatal(issues)
	}
	if len(designs) != 2 || designs[0].Name != "search" || designs[1].Name != "shop" {
		t.Fatalf("designs = %+v, want search and shop in name order", designs)
	}
	search, shop := designs[0], designs[1]
	if search.Sync.Drift != DriftReport || !search.Sync.Prune || search.Services["query"].Protocol != "http" {
		t.Errorf("search: sync %+v, protocol %q; want drift report, prune on by default, protocol http by default", search.Sync, search.Services["query"].Protocol)
	}
	if search.Files[0] != "designs/search/design.yaml" || search.Dir != "designs/search" {
		t.Errorf("search: files %v dir %q", search.Files, search.Dir)
	}
	co := shop.Services["checkout"]
	if got := *co.Routes[0].Match.Headers["x-canary"].Exact; got != "true" {
		t.Errorf("header match = %q, want exact \"true\"", got)
	}
	if co.Routes[1].To["stable"] != 90 || co.Timeout.Duration != 5*time.Second || shop.Sync.Drift != DriftHeal {
		t.Errorf("shop: routes %+v timeout %v drift %q", co.Routes, co.Timeout, shop.Sync.Drift)
	}
	if !shop.Value.Exists() {
		t.Error("the design's CUE value is not kept for the renderer")
	}
}

func TestLoadRefusesLinksAndOversizedFiles(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "clusters"), 0o755))
	must(os.MkdirAll(filepath.Join(dir, "designs/shop"), 0o755))
	must(os.Symlink("/etc/passwd", filepath.Join(dir, "clusters/passwd.cue")))
	must(os.WriteFile(filepath.Join(dir, "designs/shop/big.cue"), []byte("// "+strings.Repeat("x", 2<<20)+"\n"), 0o644))
	root, err := os.OpenRoot(dir)
	must(err)
	defer root.Close()
	_, _, err = Load(t.Context(), root.FS(), DefaultLoadOptions())
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("err = %v, want *ValidationError", err)
	}
	want := []string{
		"clusters/passwd.cue: is a symbolic link; meshcd reads only regular files inside the repo",
		"designs/shop/big.cue: is 2.0 MiB, over the 1.0 MiB limit for one file",
	}
	var got []string
	for _, is := range verr.Issues {
		got = append(got, is.String())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("issues (-want +got):\n%s", diff)
	}
	if strings.Contains(err.Error(), "root:") {
		t.Fatal("the error shows the linked file's content")
	}

	// The total size is capped too.
	opts := DefaultLoadOptions()
	opts.MaxFileBytes, opts.MaxTotalBytes = 4<<20, 1<<20
	must(os.Remove(filepath.Join(dir, "clusters/passwd.cue")))
	_, _, err = Load(t.Context(), root.FS(), opts)
	if err == nil || !strings.Contains(err.Error(), "add up to more than 1.0 MiB") {
		t.Fatalf("err = %v, want the total size limit", err)
	}
}

// slowDesign takes seconds and hundreds of MiB to evaluate: a comprehension over a large range.
func slowDesign(n int) fstest.MapFS {
	src := fmt.Sprintf("import \"list\"\n\ndesign: shop: {\n\tnamespace: \"shop\"\n\ttargets: {}\n\t_x: [for i in list.Range(0, %d, 1) {i * 2}]\n\tsync: suspend: len(_x) > 0\n}\n", n)
	return fstest.MapFS{"designs/shop/design.cue": &fstest.MapFile{Data: []byte(src)}}
}

func TestEvaluationBudgets(t *testing.T) {
	tests := []struct {
		name    string
		fsys    fstest.MapFS
		opts    func(*LoadOptions)
		wantMsg string
	}{
		{"time, in process", slowDesign(3_000_000), func(o *LoadOptions) { o.Timeout = 200 * time.Millisecond },
			"evaluation took longer than 200ms"},
		{"time, worker killed", slowDesign(3_000_000), func(o *LoadOptions) { o.Timeout = 300 * time.Millisecond; o.Worker = testWorker(t) },
			"evaluation took longer than 300ms"},
		{"memory, worker stopped", slowDesign(100_000_000), func(o *LoadOptions) { o.MaxMemoryBytes = 64 << 20; o.Worker = testWorker(t) },
			"evaluation needed more than 64.0 MiB of memory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := DefaultLoadOptions()
			tc.opts(&opts)
			start := time.Now()
			_, err := Check(t.Context(), tc.fsys, opts)
			var verr *ValidationError
			if !errors.As(err, &verr) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("err = %v, want a *ValidationError saying %q", err, tc.wantMsg)
			}
			if waited := time.Since(start); waited > 10*time.Second {
				t.Fatalf("returned after %s, long past its budget", waited)
			}
		})
	}
}

func TestWorkerGivesTheSameAnswers(t *testing.T) {
	for _, dir := range []string{"../examples/fleet", "../examples/invalid/weights-not-100", "../examples/invalid/unknown-mesh"} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			root, err := os.OpenRoot(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			inProc, errIn := Check(t.Context(), root.FS(), DefaultLoadOptions())
			opts := DefaultLoadOptions()
			opts.Worker = testWorker(t)
			isolated, errIso := Check(t.Context(), root.FS(), opts)
			if inProc != isolated || fmt.Sprint(errIn) != fmt.Sprint(errIso) {
				t.Fatalf("in process: %+v, %v\nworker:     %+v, %v", inProc, errIn, isolated, errIso)
			}
			_, designs, err := Load(t.Context(), root.FS(), opts)
			if errIn == nil && (err != nil || len(designs) != inProc.Designs || !designs[0].Value.Exists()) {
				t.Fatalf("Load with a worker: %d designs, %v", len(designs), err)
			}
		})
	}
}

func TestWorkerThatIsNotOneFailsClearly(t *testing.T) {
	opts := DefaultLoadOptions()
	opts.Worker = &Worker{Path: "/bin/true"}
	_, err := Check(t.Context(), fstest.MapFS{}, opts)
	if err == nil || !strings.Contains(err.Error(), "ServeWorkerIfRequested") {
		t.Fatalf("err = %v, want a hint that the worker binary does not serve evaluations", err)
	}
}

func TestLoadEmptyRepo(t *testing.T) {
	fleet, designs, err := Load(t.Context(), fstest.MapFS{}, DefaultLoadOptions())
	if err != nil || len(fleet.Clusters) != 0 || len(designs) != 0 {
		t.Fatalf("empty repo: %v, %v, %v", fleet, designs, err)
	}
}

// TestWorkerStaysAliveAndIsReplaced: one worker process serves evaluation after evaluation;
// one that ran over its time budget is killed, and the next evaluation starts a fresh one
// that answers correctly.
func TestWorkerStaysAliveAndIsReplaced(t *testing.T) {
	root, err := os.OpenRoot("../examples/fleet")
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	w := testWorker(t)
	opts := DefaultLoadOptions()
	opts.Worker = w
	want, err := Check(t.Context(), root.FS(), DefaultLoadOptions())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if got, err := Check(t.Context(), root.FS(), opts); err != nil || got != want {
			t.Fatalf("evaluation %d: %+v, %v; want %+v", i, got, err, want)
		}
	}
	if n := w.Starts(); n != 1 {
		t.Fatalf("three evaluations started %d worker processes, want 1", n)
	}
	slow := opts
	slow.Timeout = 300 * time.Millisecond
	if _, err := Check(t.Context(), slowDesign(3_000_000), slow); err == nil || !strings.Contains(err.Error(), "took longer than") {
		t.Fatalf("slow design: %v", err)
	}
	if got, err := Check(t.Context(), root.FS(), opts); err != nil || got != want {
		t.Fatalf("after the killed worker: %+v, %v", got, err)
	}
	if n := w.Starts(); n != 2 {
		t.Fatalf("want a second worker process after the first was killed, got %d starts", n)
	}
}

// TestIdleWorkerCostsNoCPU: a daemon keeps one worker per repo alive between evaluations, so
// an idle worker must not burn CPU (a heap watch that polled every 2 ms cost 4% of a core per
// worker, most of a core with 20 repos).
func TestIdleWorkerCostsNoCPU(t *testing.T) {
	root, err := os.OpenRoot("../examples/shop")
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	w := testWorker(t)
	opts := DefaultLoadOptions()
	opts.Worker = w
	if _, err := Check(t.Context(), root.FS(), opts); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	pid := w.proc.cmd.Process.Pid
	w.mu.Unlock()
	before := cpuTicks(t, pid)
	time.Sleep(1500 * time.Millisecond)
	if used := cpuTicks(t, pid) - before; used > 3 {
		t.Fatalf("the idle worker used %d clock ticks of CPU in 1.5 s, want about none", used)
	}
}

// cpuTicks is the user plus system time of a process, in clock ticks (/proc/PID/stat).
func cpuTicks(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	var utime, stime int
	fmt.Sscan(fields[11], &utime)
	fmt.Sscan(fields[12], &stime)
	return utime + stime
}

// TestWorkerAddressSpaceLimit: the kernel bounds a worker's address space (RLIMIT_AS) behind
// the heap watch, except for a race-built worker, whose detector needs terabytes of address
// space (make test runs race-built, so there it checks that the limit is left off).
func TestWorkerAddressSpaceLimit(t *testing.T) {
	w := testWorker(t)
	opts := DefaultLoadOptions()
	opts.Worker = w
	if _, err := Check(t.Context(), fstest.MapFS{}, opts); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	pid := w.proc.cmd.Process.Pid
	w.mu.Unlock()
	limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(string(limits), "\n") {
		if strings.HasPrefix(l, "Max address space") {
			line = l
		}
	}
	want := fmt.Sprint(DefaultAddressSpaceBytes)
	if race.Enabled {
		want = "unlimited"
	}
	if fields := strings.Fields(strings.TrimPrefix(line, "Max address space")); len(fields) < 2 || fields[0] != want || fields[1] != want {
		t.Fatalf("worker limits: %q, want soft and hard %s", line, want)
	}
}

// TestEdgeAddressRulesHoldAcrossTeams: a route's address rule is held to its host's, and a
// team's claimed route cannot set one under the owner's (Contour would let it replace the
// owner's rule).
func TestEdgeAddressRulesHoldAcrossTeams(t *testing.T) {
	owner := func(hostAccess, routeAccess string) string {
		return "design: edge: {\n\tnamespace: \"edge\"\n\tservices: web: {port: 80, versions: v: labels: x: \"y\", routes: [{to: v: 100}]}\n" +
			"\tingress: hosts: \"www.example.com\": {\n\t\t" + hostAccess + "\n\t\troutes: [{prefix: \"/\", backends: [{service: \"web\"}]" + routeAccess + "}]\n" +
			"\t\tdelegate: [{prefix: \"/shop\", namespace: \"shop\"}]\n\t}\n}\n"
	}
	claim := func(access string) string {
		return "design: shop: {\n\tnamespace: \"shop\"\n\tservices: cart: {port: 80, versions: v: labels: x: \"y\", routes: [{to: v: 100}]}\n" +
			"\tingress: claims: [{host: \"www.example.com\", prefix: \"/shop\", owner: \"edge\", routes: [{backends: [{service: \"cart\"}]" + access + "}]}]\n}\n"
	}
	tests := []struct {
		name, host, route string
		want              []string
	}{
		{"deny lists join", `access: deny: ["203.0.113.0/24"]`, `, access: deny: ["198.51.100.0/24"]`, nil},
		{"an allow list inside the host's", `access: allow: ["10.0.0.0/8"]`, `, access: allow: ["10.1.0.0/16"]`, nil},
		{"an allow list outside the host's", `access: allow: ["10.0.0.0/8"]`, `, access: allow: ["192.168.0.0/16"]`,
			[]string{"designs/edge/design.cue:6:56: ingress.hosts.\"www.example.com\".routes[0].access: 192.168.0.0/16 is not within the addresses the host allows (10.0.0.0/8): a route can narrow its host's allow list, not widen it"}},
		{"an allow list into the host's deny list", `access: deny: ["10.0.0.0/8"]`, `, access: allow: ["10.1.0.0/16"]`,
			[]string{"designs/edge/design.cue:6:56: ingress.hosts.\"www.example.com\".routes[0].access: 10.1.0.0/16 overlaps the addresses the host denies (10.0.0.0/8): a route cannot let them back in"}},
		{"another source", `access: deny: ["10.0.0.0/8"]`, `, access: {deny: ["10.1.0.0/16"], source: "forwarded"}`,
			[]string{"designs/edge/design.cue:6:56: ingress.hosts.\"www.example.com\".routes[0].access: the host judges the peer address and this route the forwarded one; say the same source"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, got := load(t, map[string]string{"clusters/east.cue": clusterEast, "designs/edge/design.cue": owner(tc.host, tc.route), "designs/shop/design.cue": claim("")})
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("issues (-want +got):\n%s\nfile:\n%s", diff, owner(tc.host, tc.route))
			}
		})
	}
	t.Run("a claim under the owner's rule", func(t *testing.T) {
		files := map[string]string{"clusters/east.cue": clusterEast, "designs/shop/design.cue": claim(`, access: allow: ["192.0.2.0/24"]`)}
		files["designs/edge/design.cue"] = owner("", "")
		if _, got := load(t, files); got != nil {
			t.Errorf("with no rule on the host, the team's own rule is refused: %q", got)
		}
		files["designs/edge/design.cue"] = owner(`access: deny: ["203.0.113.0/24"]`, "")
		_, got := load(t, files)
		want := []string{"designs/shop/design.cue:4:119: ingress.claims[0].routes[0].access: design edge already admits clients of www.example.com by address, and Contour's route rules replace the host's: a claimed route's own address rule would undo the owner's; ask the owner to narrow the host's rule"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("issues (-want +got):\n%s", diff)
		}
	})
}

// TestEdgeHealthChecksCountInSeconds: Contour counts health-check intervals and timeouts in
// whole seconds, so anything else is refused at the field rather than rounded.
func TestEdgeHealthChecksCountInSeconds(t *testing.T) {
	host := func(check string) string {
		return "design: edge: {\n\tnamespace: \"edge\"\n\tservices: web: {port: 80, versions: v: labels: x: \"y\", routes: [{to: v: 100}]}\n" +
			"\tingress: hosts: \"www.example.com\": routes: [{backends: [{service: \"web\"}], idleTimeout: \"1m\", healthCheck: " + check + "}]\n}\n"
	}
	for _, tc := range []struct {
		check string
		want  []string
	}{
		{`{path: "/healthz"}`, nil},
		{`{path: "/healthz", interval: "2500ms"}`, []string{`designs/edge/design.cue:4:128: ingress.hosts."www.example.com".routes[0].healthCheck.interval: interval 2500ms must be a whole number of seconds (Contour counts health checks in seconds)`}},
		{`{path: "/healthz", interval: "2s", timeout: "3s"}`, []string{`designs/edge/design.cue:4:144: ingress.hosts."www.example.com".routes[0].healthCheck.timeout: a check that may take 3s cannot run every 2s`}},
	} {
		_, got := load(t, map[string]string{"clusters/east.cue": clusterEast, "designs/edge/design.cue": host(tc.check)})
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s: issues (-want +got):\n%s", tc.check, diff)
		}
	}
}
