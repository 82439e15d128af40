package daemon

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshcd/meshcd/internal/testenv"
	"github.com/meshcd/meshcd/render"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
)

// counter is a listener that counts the connections it is sent and answers each request.
type counter struct {
	conns atomic.Int64
	url   string
}

func newCounter(t *testing.T) *counter {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &counter{url: "http://" + l.Addr().String()}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"type": "object"}`)) }),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				c.conns.Add(1)
			}
		},
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return c
}

// victimDesign is the design the hostile revisions are made of: a ConfigMap that must never
// be pruned, plus whatever the attacker adds (extra CUE in the design, extra files).
func victimDesign(extra string, files map[string][]byte) map[string][]byte {
	manifests := `manifests: [{yaml: "./raw"}]`
	if strings.Contains(extra, "manifests:") {
		manifests = ""
	}
	out := map[string][]byte{
		"designs/victim/design.cue": []byte(fmt.Sprintf(`design: victim: {
	namespace: "victim"
	targets: matchLabels: env: "prod"
	%s
	%s
}`, manifests, extra)),
		"designs/victim/raw/keep.yaml": []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep}\ndata: {k: v}\n"),
	}
	for k, v := range files {
		out[k] = v
	}
	return out
}

// TestHostileRepos pushes, one after another, the revisions an attacker would write, each as a
// pull request's head and then as main, to a daemon whose gate policy is the default one (no
// loopback, no preview hosts). For every one: nothing reaches a listener the policy forbids
// (they count), no canary (a host file, another team's live object, a Secret's value) appears
// in any status file of the whole Git history, in /api/v1/status or in the daemon's log,
// nothing of the victim design is pruned, and the daemon's memory stays within 150 MiB.
func TestHostileRepos(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	forbidden, schemaRefs := newCounter(t), newCounter(t)
	hostFile := filepath.Join(t.TempDir(), "host-secret.json")
	must(t, os.WriteFile(hostFile, []byte(`{"description": "CANARY-HOST-7f3a"}`), 0o644))

	f := newFleet(t, ctx, []repoSpec{{name: "hostile", files: victimDesign("", nil), extra: "\n  pullRequests: refs/pull/*/head"}}, nil,
		"gates: {}\nrender: {timeout: 5s}\n")
	// Another team's ConfigMap, managed by no design.
	east := f.clients["east"]
	cmGVK := k8sschema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	nsGVK := k8sschema.GroupVersionKind{Version: "v1", Kind: "Namespace"}
	nsm, err := east.Live.Mapping(nsGVK)
	must(t, err)
	cmm, err := east.Live.Mapping(cmGVK)
	must(t, err)
	_, _ = east.Dynamic.Resource(nsm.Resource).Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "other-team"}}}, metav1.CreateOptions{})
	_, err = east.Dynamic.Resource(cmm.Resource).Namespace("other-team").Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "peek"}, "data": map[string]any{"token": "CANARY-LIVE-51c2"}}}, metav1.CreateOptions{})
	must(t, err)

	d := startDaemon(t, f.config, f.addr)
	kept := func() bool {
		for _, c := range []string{"east", "west", "central"} {
			if _, err := f.clients[c].Dynamic.Resource(cmm.Resource).Namespace("victim").Get(ctx, "keep", getOptions); err != nil {
				return false
			}
		}
		return true
	}
	within(t, 60*time.Second, "the victim design applied", kept)
	rss := func() int64 {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
		must(t, err)
		var kb int64
		for _, line := range strings.Split(string(data), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				fmt.Sscan(rest, &kb)
			}
		}
		return kb << 10
	}
	before := rss()

	chart := func(schema string) map[string][]byte {
		return map[string][]byte{
			"designs/victim/chart/Chart.yaml":         []byte("apiVersion: v2\nname: c\nversion: 0.1.0\n"),
			"designs/victim/chart/values.yaml":        []byte("a: 1\n"),
			"designs/victim/chart/values.schema.json": []byte(schema),
			"designs/victim/chart/templates/cm.yaml":  []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: charted}\ndata: {a: {{ .Values.a | quote }}}\n"),
		}
	}
	classes := []struct {
		name  string
		files map[string][]byte
		// want is what the victim's status (main) or the preview (pull request) says.
		want string
	}{
		{"a gate aimed at a loopback listener, with the author's headers, unlimited", victimDesign(fmt.Sprintf(`gates: cannon: {
		url: %q
		load: {qps: 0, connections: 10000, duration: "8760h", headers: {Authorization: "Bearer CANARY-HDR-9d1e"}, payload: "x"}
		thresholds: p99: "1s"
		triggers: ["change", "pr"]
	}`, forbidden.url+"/"), nil), "policy"},
		{"a gate at the daemon's own metrics", victimDesign(fmt.Sprintf(`gates: self: {
		url: %q
		load: {qps: 10, connections: 1, duration: "1s"}
		thresholds: p99: "1s"
		triggers: ["change", "pr"]
	}`, "http://"+f.addr+"/metrics"), nil), "policy"},
		{"a chart schema reaching a host file and a URL", victimDesign(`manifests: [{yaml: "./raw"}, {helm: chart: "./chart"}]`,
			chart(`{"type": "object", "properties": {"a": {"$ref": "file://`+hostFile+`"}, "b": {"$ref": "`+schemaRefs.url+`/x.json"}}}`)), "follows no $ref"},
		{"another team's live object named in the design", victimDesign("", map[string][]byte{
			"designs/victim/raw/peek.yaml": []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: peek, namespace: other-team}\ndata: {token: mine}\n")}), "conflict with another field manager"},
		{"a Helm template that loops for ever", victimDesign(`manifests: [{yaml: "./raw"}, {helm: chart: "./chart"}]`, map[string][]byte{
			"designs/victim/chart/Chart.yaml":        []byte("apiVersion: v2\nname: c\nversion: 0.1.0\n"),
			"designs/victim/chart/templates/cm.yaml": []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: loop}\ndata:\n  x: |\n    {{ range $i := until 100000 }}{{ range $j := until 100000 }}{{ end }}{{ end }}\n"),
		}), "render took longer than 5s"},
		{"a CUE bomb", victimDesign(cueBomb(32), nil), "look for recursive or exponentially large definitions"},
		{"an invalid Secret", victimDesign("", map[string][]byte{
			"designs/victim/raw/secret.yaml": []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: pull}\ntype: kubernetes.io/dockerconfigjson\nstringData: {.dockerconfigjson: CANARY-SECRET-4b7a}\n")}), "Secret victim/pull"},
		{"a manifest replaced by a symlink to a host file", victimDesign("", map[string][]byte{
			"designs/victim/raw/keep.yaml": testenv.Symlink(hostFile)}), "symbolic link"},
	}

	// Each revision is a whole tree: files of the revisions before it are deleted.
	all := map[string]bool{}
	for _, c := range classes {
		for name := range c.files {
			all[name] = true
		}
	}
	for _, c := range classes {
		for name := range all {
			if _, ok := c.files[name]; !ok {
				c.files[name] = nil
			}
		}
	}
	repo := f.repos[0]
	defer func() {
		if t.Failed() {
			file, _ := repo.ReadFile(ctx, "main", "status/victim/east.json")
			_, api := get(t, "http://"+f.addr+"/api/v1/status")
			t.Logf("status/victim/east.json:\n%s\n/api/v1/status:\n%s", file, api)
		}
	}()
	for i, c := range classes {
		pr := fmt.Sprintf("refs/pull/%d/head", i+1)
		head, err := repo.Push(ctx, "attack", withFleet(c.files), "attack: "+c.name)
		must(t, err)
		must(t, repo.SetRef(ctx, pr, head))
		within(t, 90*time.Second, "the preview of "+c.name, func() bool {
			md, err := repo.ReadFile(ctx, "main", fmt.Sprintf("status/pr/%d.md", i+1))
			return err == nil && strings.Contains(string(md), head[:7])
		})
		rev, err := push(ctx, repo, "main", withFleet(c.files), "attack: "+c.name)
		must(t, err)
		within(t, 90*time.Second, "main's round of "+c.name, func() bool {
			// What the daemon says of this revision: the design's status file (a render or
			// apply failure, a gate's refusal) or the repo's (a repo it could not load).
			file, _ := repo.ReadFile(ctx, "main", "status/victim/east.json")
			_, api := get(t, "http://"+f.addr+"/api/v1/status")
			about := strings.Contains(string(file), rev) && strings.Contains(string(file), c.want) ||
				strings.Contains(api, "revision "+rev[:7]+" not applied") && strings.Contains(api, c.want)
			return about
		})
		if !kept() {
			t.Fatalf("after %s the victim's ConfigMap is gone", c.name)
		}
		must(t, repo.DeleteRef(ctx, pr))
	}

	if n := forbidden.conns.Load(); n != 0 {
		t.Errorf("the forbidden listener took %d connections", n)
	}
	if n := schemaRefs.conns.Load(); n != 0 {
		t.Errorf("a chart's schema $ref was fetched over %d connections", n)
	}
	out, err := exec.CommandContext(ctx, "git", "--git-dir", repo.Dir, "log", "-p", "--all", "--", "status/").CombinedOutput()
	must(t, err)
	_, api := get(t, "http://"+f.addr+"/api/v1/status")
	for _, canary := range []string{"CANARY-HOST-7f3a", "CANARY-LIVE-51c2", "CANARY-SECRET-4b7a", "Q0FOQVJZLVNFQ1JFVC00Yjdh"} {
		for where, text := range map[string]string{"the status files' history": string(out), "/api/v1/status": api, "the daemon's log": d.logs.String()} {
			if strings.Contains(text, canary) {
				t.Errorf("%s holds %s", where, canary)
			}
		}
	}
	if !strings.Contains(string(out), render.Masked) && !strings.Contains(string(out), "Secret victim/pull") {
		t.Logf("(the invalid Secret's error did not reach a status file)")
	}
	if grew := rss() - before; grew > 150<<20 {
		t.Errorf("the daemon's RSS grew by %d MiB over the hostile revisions", grew>>20)
	}
}

// cueBomb is CUE whose strings double n times from 64 bytes: past the worker's memory budget
// within a few doublings of a gigabyte.
func cueBomb(n int) string {
	var b strings.Builder
	b.WriteString(`_s0: "` + strings.Repeat("x", 64) + `"` + "\n\t")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "_s%d: _s%d + _s%d\n\t", i, i-1, i-1)
	}
	fmt.Fprintf(&b, "sync: suspend: len(_s%d) < 0", n)
	return b.String()
}
