package daemon

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestConfigReportsEveryProblemAtOnce(t *testing.T) {
	_, err := ParseConfig("meshcd.yaml", []byte(`
listen: 127.0.0.1:8080
repos:
- url: https://git.example.com/fleet.git
  interval: soon
  pasword: {env: GIT_TOKEN}
- branch: main
clusters:
  east: {kubeconfig: /etc/meshcd/east, inCluster: true}
  west: {kubeconfig: /etc/meshcd/west, contex: west}
webhooks:
  gitlab: {}
  svn: {file: /x}
`))
	var cerr *ConfigError
	if !errors.As(err, &cerr) {
		t.Fatalf("want a ConfigError, got %v", err)
	}
	want := []string{
		"clusters.west.contex: unknown key",
		"repos[0].pasword: unknown key",
	}
	if diff := cmp.Diff(want, cerr.Problems); diff != "" {
		t.Errorf("unknown keys first, all of them (-want +got)\n%s", diff)
	}

	_, err = ParseConfig("meshcd.yaml", []byte(`
repos:
- url: https://git.example.com/fleet.git
  interval: soon
  feedback: {provider: bitbucket, token: {}}
- branch: main
  schedule: "every tuesday"
- {url: "http://git.internal/fleet.git", branch: main}
- {url: "git@github.com:org/fleet.git", branch: main}
- {url: "ext::sh -c touch% /tmp/pwned", branch: main}
clusters:
  east: {kubeconfig: /etc/meshcd/east, inCluster: true}
webhooks:
  gitlab: {}
  svn: {file: /x}
gates: {maxDuration: forever, previewHosts: ["[bad"]}
web: {access: token}
`))
	if !errors.As(err, &cerr) {
		t.Fatalf("want a ConfigError, got %v", err)
	}
	want = []string{
		"clusters.east: give exactly one of kubeconfig, inCluster or secret",
		`gates.maxDuration: "forever" is not a positive duration`,
		`gates.previewHosts[0]: "[bad" is not a host or glob`,
		`repos[0].branch: required`,
		`repos[0].feedback.provider: "bitbucket" is not gitea, github or gitlab`,
		"repos[0].feedback.token: give file or env",
		"repos[0].feedback: needs pullRequests, the refs it gives feedback on",
		`repos[0].interval: "soon" is not a positive duration`,
		`repos[1].schedule: "every tuesday": expected 5 to 6 fields, found 2: [every tuesday]`,
		"repos[1].url: required",
		`repos[2].url: repository "http://git.internal/fleet.git" uses plain http; allow it in the config or use https`,
		"repos[3].ssh: required for an ssh URL (meshcd uses no SSH agent)",
		`repos[4].url: repository "ext::sh -c touch% /tmp/pwned" uses a transport helper (ext::, fd::); only https and ssh are allowed`,
		"web.token: access token needs a token: give file or env",
		"webhooks.gitlab: give file or env",
		"webhooks.svn: unknown provider (github, gitlab, gitea, bitbucket-server, generic)",
	}
	if diff := cmp.Diff(want, cerr.Problems); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	if !strings.Contains(err.Error(), "meshcd.yaml: 16 problems") {
		t.Errorf("the error names the file and the count: %v", err)
	}
}

// TestEmptyWebhookSecretStopsStartUp: an empty secret would make any body's signature valid,
// so the daemon refuses to serve rather than accept every webhook.
func TestEmptyWebhookSecretStopsStartUp(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &Daemon{log: slog.New(slog.DiscardHandler), cfg: &Config{Listen: "127.0.0.1:0", Webhooks: map[string]Secret{"github": {File: empty}}}}
	srv, err := d.serve(t.Context())
	if srv != nil {
		srv.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "webhooks.github: the secret is empty") {
		t.Fatalf("serve with an empty webhook secret: %v", err)
	}
}

// FuzzParseConfig: whatever bytes a config file holds, ParseConfig returns a config that
// passed every check or a ConfigError naming the problems; it never panics.
func FuzzParseConfig(f *testing.F) {
	for _, seed := range []string{
		"repos: [{url: https://git.example.com/f.git, branch: main}]\nclusters: {east: {inCluster: true}}\n",
		"listen: 0.0.0.0:8080\ngates: {allowPrivate: true, previewHosts: ['*.preview.example.com'], maxDuration: 15m}\nrender: {timeout: 30s}\n",
		"repos: [{url: 'git@github.com:o/r.git', branch: main, ssh: {privateKey: {file: /k}, insecureIgnoreHostKey: true}}]\nclusters: {a: {kubeconfig: /k}}\n",
		"webhooks: {github: {env: X}}\nleaderElection: {namespace: ns, leaseDuration: 1s}\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig("meshcd.yaml", data)
		var cerr *ConfigError
		switch {
		case err == nil:
			if problems := cfg.check(); len(problems) > 0 {
				t.Fatalf("a config with problems was accepted: %v", problems)
			}
		case !errors.As(err, &cerr) || len(cerr.Problems) == 0:
			t.Fatalf("not a ConfigError with problems: %v", err)
		}
	})
}
