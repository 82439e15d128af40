package sources

import (
	"strings"
	"testing"

	"github.com/meshcd/meshcd/internal/testenv"
)

// gitRepo starts a Git server for the test with one empty repository.
func gitRepo(t *testing.T, opts testenv.GitServerOptions) (*testenv.GitServer, *testenv.Repo) {
	t.Helper()
	srv, err := testenv.StartGitServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	r, err := srv.CreateRepo(t.Context(), "fleet")
	if err != nil {
		t.Fatal(err)
	}
	return srv, r
}

// localPoller allows the plain-http Git server the tests run on loopback.
func localPoller(cacheDir string) *Poller {
	p := NewPoller(cacheDir)
	p.Policy.AllowHTTP = true
	return p
}

func TestURLPolicy(t *testing.T) {
	tests := []struct {
		url    string
		policy URLPolicy
		want   string // "" allowed
	}{
		{"https://github.com/acme/fleet.git", URLPolicy{}, ""},
		{"ssh://git@github.com/acme/fleet.git", URLPolicy{}, ""},
		{"git@github.com:acme/fleet.git", URLPolicy{}, ""},
		{"http://git.internal/fleet.git", URLPolicy{}, "plain http"},
		{"http://git.internal/fleet.git", URLPolicy{AllowHTTP: true}, ""},
		{"file:///srv/fleet.git", URLPolicy{}, "local path"},
		{"/srv/fleet.git", URLPolicy{}, "local path"},
		{"file:///srv/fleet.git", URLPolicy{AllowFile: true}, ""},
		{"-uhelp", URLPolicy{}, "starts with '-'"},
		{"ext::sh -c touch% /tmp/pwned", URLPolicy{}, "transport helper"},
		{"https://169.254.169.254/latest/meta-data", URLPolicy{}, "link-local"},
		{"https://[fe80::1]/x.git", URLPolicy{}, "link-local"},
		{"https://metadata.google.internal/x", URLPolicy{}, "metadata"},
		{"https://169.254.169.254/x", URLPolicy{AllowLinkLocal: true}, ""},
		{"ftp://host/x.git", URLPolicy{}, "only https and ssh"},
		{"https://user:hunter2@git.example.com/x.git", URLPolicy{}, ""},
		{"http://user:hunter2@git.example.com/x.git", URLPolicy{}, "plain http"},
	}
	for _, tc := range tests {
		err := tc.policy.Check(tc.url)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want allowed", tc.url, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error about %q", tc.url, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "hunter2"):
			t.Errorf("%s: the error shows the password: %v", tc.url, err)
		}
	}
	if _, err := NewPoller(t.TempDir()).Poll(t.Context(), Repo{URL: "http://127.0.0.1:1/x.git"}, []string{"main"}); err == nil || !strings.Contains(err.Error(), "plain http") {
		t.Fatalf("the default poller contacted a plain-http repo: %v", err)
	}
}

// TestPrivateCA: an https Git server with a certificate from a private CA is refused until its
// CA bundle is given, and then polled and committed to like any other.
func TestPrivateCA(t *testing.T) {
	srv, r := gitRepo(t, testenv.GitServerOptions{TLS: true})
	if _, err := r.Push(t.Context(), "main", map[string][]byte{"a": []byte("1")}, "a"); err != nil {
		t.Fatal(err)
	}
	p := NewPoller(t.TempDir()) // https: the default policy allows it
	_, err := p.Poll(t.Context(), Repo{URL: r.HTTPURL()}, []string{"main"})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate: err = %v, want a certificate error", err)
	}
	repo := Repo{URL: r.HTTPURL(), CABundle: srv.CACertPEM()}
	res, err := p.Poll(t.Context(), repo, []string{"main"})
	if err != nil || !res[0].Changed {
		t.Fatalf("with the CA bundle: %v", err)
	}
	if _, err := p.CommitFiles(t.Context(), repo, DefaultCommitOptions(), map[string][]byte{"status/x.json": []byte("{}\n")}); err != nil {
		t.Fatalf("commit over https with the CA bundle: %v", err)
	}
}
