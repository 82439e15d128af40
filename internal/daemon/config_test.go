package daemon

import (
	"errors"
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
- branch: main
  schedule: "every tuesday"
clusters:
  east: {kubeconfig: /etc/meshcd/east, inCluster: true}
webhooks:
  gitlab: {}
  svn: {file: /x}
`))
	if !errors.As(err, &cerr) {
		t.Fatalf("want a ConfigError, got %v", err)
	}
	want = []string{
		"clusters.east: give exactly one of kubeconfig, inCluster or secret",
		`repos[0].branch: required`,
		`repos[0].interval: "soon" is not a positive duration`,
		`repos[1].schedule: "every tuesday": expected 5 to 6 fields, found 2: [every tuesday]`,
		"repos[1].url: required",
		"webhooks.gitlab: give file or env",
		"webhooks.svn: unknown provider (github, gitlab, gitea, bitbucket-server, generic)",
	}
	if diff := cmp.Diff(want, cerr.Problems); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	if !strings.Contains(err.Error(), "meshcd.yaml: 7 problems") {
		t.Errorf("the error names the file and the count: %v", err)
	}
}
