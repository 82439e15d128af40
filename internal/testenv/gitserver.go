package testenv

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// GitServerOptions configures a test Git server.
type GitServerOptions struct {
	// Username and Password, when set, turn on HTTP basic auth for every request.
	Username, Password string
	// TLS serves https with a certificate from a test CA (see CACertPEM).
	TLS bool
}

// GitServer serves bare repositories over smart HTTP with git's own `git http-backend`, and
// records every request so tests can count listings, fetches and pushes exactly.
type GitServer struct {
	root string
	srv  *httptest.Server
	opts GitServerOptions

	mu       sync.Mutex
	requests []GitRequest
	down     bool
	// beforePush runs once, before the next push's pack is received.
	beforePush func()
}

// GitRequest is one request the server answered.
type GitRequest struct {
	// Repo is the repository name, e.g. "fleet".
	Repo string
	// Service is git-upload-pack (listing or fetch) or git-receive-pack (push).
	Service string
	// Advertisement is true for the ref listing (GET info/refs) and false for the pack exchange.
	Advertisement bool
	// User is the basic-auth user the request carried, if any.
	User string
	// Status is the HTTP status code of the answer; 0 when the server was down.
	Status int
}

// StartGitServer starts a Git server on a loopback port with its repositories in a temporary
// folder. Close stops it and removes the folder.
func StartGitServer(opts GitServerOptions) (*GitServer, error) {
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		return nil, fmt.Errorf("finding git's exec path (is git installed?): %w", err)
	}
	backend := filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		return nil, fmt.Errorf("git http-backend not found: %w", err)
	}
	root, err := os.MkdirTemp("", "meshcd-git-")
	if err != nil {
		return nil, err
	}
	s := &GitServer{root: root, opts: opts}
	cgiHandler := &cgi.Handler{
		Path: backend,
		Root: "/",
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
		// A push that lost a race is refused with a line on stderr; the pusher hears of it.
		Stderr: io.Discard,
	}
	s.srv = httptest.NewUnstartedServer(s.handle(cgiHandler))
	if opts.TLS {
		s.srv.StartTLS()
	} else {
		s.srv.Start()
	}
	return s, nil
}

// CACertPEM is the certificate a TLS server's clients must trust, PEM-encoded.
func (s *GitServer) CACertPEM() []byte {
	if s.srv.Certificate() == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

// URL is the server's base address, e.g. http://127.0.0.1:34567.
func (s *GitServer) URL() string { return s.srv.URL }

// Close stops the server and removes its repositories.
func (s *GitServer) Close() {
	s.srv.Close()
	os.RemoveAll(s.root)
}

// SetDown makes the server unreachable (every connection is closed without an answer) or
// reachable again, like a Git host in an outage.
func (s *GitServer) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// BeforeNextPush runs fn once, when the next push asks for the refs it will update, while that
// push waits: a test forces another push to land between a committer's fetch and its push, as
// a concurrent committer would. Pushes that fn makes itself are not held.
func (s *GitServer) BeforeNextPush(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.beforePush = fn
}

// Requests returns every request answered so far, in order.
func (s *GitServer) Requests() []GitRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]GitRequest(nil), s.requests...)
}

// ResetRequests forgets the recorded requests, so a test can count from a known point.
func (s *GitServer) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

func (s *GitServer) handle(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := GitRequest{}
		rec.Repo, rec.Service, rec.Advertisement = classify(r)
		s.mu.Lock()
		down := s.down
		var hook func()
		if rec.Service == "git-receive-pack" && rec.Advertisement {
			hook, s.beforePush = s.beforePush, nil
		}
		s.mu.Unlock()
		if down {
			s.mu.Lock()
			s.requests = append(s.requests, rec) // Status 0: refused at the door
			s.mu.Unlock()
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if hook != nil {
			hook()
		}
		user, pass, hasAuth := r.BasicAuth()
		if hasAuth {
			rec.User = user
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			rec.Status = sw.status
			s.mu.Lock()
			s.requests = append(s.requests, rec)
			s.mu.Unlock()
		}()
		if s.opts.Username != "" || s.opts.Password != "" {
			okUser := subtle.ConstantTimeCompare([]byte(user), []byte(s.opts.Username)) == 1
			okPass := subtle.ConstantTimeCompare([]byte(pass), []byte(s.opts.Password)) == 1
			if !hasAuth || !okUser || !okPass {
				sw.Header().Set("WWW-Authenticate", `Basic realm="meshcd-test-git"`)
				http.Error(sw, "authentication required", http.StatusUnauthorized)
				return
			}
		}
		next.ServeHTTP(sw, r)
	})
}

// classify names the repository and git service of a smart-HTTP request.
func classify(r *http.Request) (repo, service string, advertisement bool) {
	path := strings.TrimPrefix(r.URL.Path, "/")
	if i := strings.Index(path, ".git/"); i >= 0 {
		repo = path[:i]
		rest := path[i+len(".git/"):]
		switch {
		case rest == "info/refs":
			return repo, r.URL.Query().Get("service"), true
		case rest == "git-upload-pack" || rest == "git-receive-pack":
			return repo, rest, false
		}
	}
	return repo, "", false
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Repo is one bare repository on a GitServer.
type Repo struct {
	Name   string
	Dir    string
	server *GitServer

	mu      sync.Mutex
	workDir string
}

// CreateRepo creates an empty bare repository whose default branch is main and which accepts
// pushes over HTTP.
func (s *GitServer) CreateRepo(ctx context.Context, name string) (*Repo, error) {
	dir := filepath.Join(s.root, name+".git")
	if _, err := runGit(ctx, "", nil, "init", "--bare", "--initial-branch=main", dir); err != nil {
		return nil, err
	}
	if _, err := runGit(ctx, dir, nil, "config", "http.receivepack", "true"); err != nil {
		return nil, err
	}
	return &Repo{Name: name, Dir: dir, server: s}, nil
}

// CloneHandle returns another handle on the same repository with a work clone of its own,
// for tests where several committers push concurrently.
func (s *GitServer) CloneHandle(ctx context.Context, r *Repo) (*Repo, error) {
	return &Repo{Name: r.Name, Dir: r.Dir, server: s}, nil
}

// HTTPURL is the repository's smart-HTTP address, without credentials.
func (r *Repo) HTTPURL() string { return r.server.URL() + "/" + r.Name + ".git" }

// FileURL is the repository's file:// address.
func (r *Repo) FileURL() string { return "file://" + r.Dir }

// Push commits files to branch and pushes the commit over smart HTTP with the git CLI, like any
// other committer would. A nil value deletes that file. It returns the new commit's hash. A
// push rejected as non-fast-forward is returned as an error; the next Push starts from the
// server's tip again.
func (r *Repo) Push(ctx context.Context, branch string, files map[string][]byte, message string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.workDir == "" {
		dir, err := os.MkdirTemp(r.server.root, r.Name+"-work-")
		if err != nil {
			return "", err
		}
		if _, err := runGit(ctx, "", nil, "init", "--initial-branch=main", dir); err != nil {
			return "", err
		}
		r.workDir = dir
	}
	auth := r.server.authArgs()
	remote := r.HTTPURL()
	if _, err := runGit(ctx, r.workDir, nil, append(auth, "fetch", "--quiet", remote, "+refs/heads/*:refs/remotes/origin/*")...); err != nil {
		return "", err
	}
	// Files left from a push to another branch must not block the switch.
	_, _ = runGit(ctx, r.workDir, nil, "clean", "-fdq")
	if _, err := runGit(ctx, r.workDir, nil, "rev-parse", "--verify", "--quiet", "refs/remotes/origin/"+branch); err == nil {
		if _, err := runGit(ctx, r.workDir, nil, "checkout", "--quiet", "--force", "-B", branch, "refs/remotes/origin/"+branch); err != nil {
			return "", err
		}
	} else {
		if _, err := runGit(ctx, r.workDir, nil, "checkout", "--quiet", "--orphan", branch); err != nil {
			return "", err
		}
		_, _ = runGit(ctx, r.workDir, nil, "rm", "-r", "--quiet", "--cached", "--ignore-unmatch", ".")
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		path := filepath.Join(r.workDir, filepath.FromSlash(name))
		if files[name] == nil {
			if _, err := runGit(ctx, r.workDir, nil, "rm", "--quiet", "--ignore-unmatch", "--", name); err != nil {
				return "", err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return "", err
		}
		_ = os.Remove(path)
		if target, ok := bytes.CutPrefix(files[name], symlinkMarker); ok {
			if err := os.Symlink(string(target), path); err != nil {
				return "", err
			}
		} else if err := os.WriteFile(path, files[name], 0o644); err != nil {
			return "", err
		}
		if _, err := runGit(ctx, r.workDir, nil, "add", "--", name); err != nil {
			return "", err
		}
	}
	if _, err := runGit(ctx, r.workDir, nil, "commit", "--quiet", "--allow-empty", "-m", message); err != nil {
		return "", err
	}
	if _, err := runGit(ctx, r.workDir, nil, append(auth, "push", "--quiet", remote, "HEAD:refs/heads/"+branch)...); err != nil {
		return "", err
	}
	return r.Head(ctx, branch)
}

// symlinkMarker starts the content of a file Push commits as a symbolic link.
var symlinkMarker = []byte("\x00meshcd-testenv-symlink:")

// Symlink is file content for Push that commits the file as a symbolic link to target.
func Symlink(target string) []byte { return append(append([]byte{}, symlinkMarker...), target...) }

// SetRef points a ref of the bare repository at a commit, as a Git host does for pull-request
// refs (refs/pull/7/head) and tags.
func (r *Repo) SetRef(ctx context.Context, ref, commit string) error {
	_, err := runGit(ctx, r.Dir, nil, "update-ref", ref, commit)
	return err
}

// DeleteRef removes a ref of the bare repository, as a Git host does when a pull request closes.
func (r *Repo) DeleteRef(ctx context.Context, ref string) error {
	_, err := runGit(ctx, r.Dir, nil, "update-ref", "-d", ref)
	return err
}

// Head returns the commit a ref of the bare repository points at.
func (r *Repo) Head(ctx context.Context, ref string) (string, error) {
	out, err := runGit(ctx, r.Dir, nil, "rev-parse", "--verify", ref)
	return strings.TrimSpace(out), err
}

// ReadFile returns a file's content at a ref of the bare repository.
func (r *Repo) ReadFile(ctx context.Context, ref, path string) ([]byte, error) {
	out, err := runGit(ctx, r.Dir, nil, "show", ref+":"+path)
	return []byte(out), err
}

// Commit is one entry of a branch's history.
type Commit struct {
	Hash, Author, Subject string
	Parents               []string
}

// Log returns a ref's history, newest first.
func (r *Repo) Log(ctx context.Context, ref string) ([]Commit, error) {
	out, err := runGit(ctx, r.Dir, nil, "log", "--format=%H%x00%an%x00%s%x00%P", ref)
	if err != nil {
		return nil, err
	}
	var commits []Commit
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "\x00")
		if len(f) != 4 {
			continue
		}
		commits = append(commits, Commit{Hash: f[0], Author: f[1], Subject: f[2], Parents: strings.Fields(f[3])})
	}
	return commits, nil
}

// authArgs passes the server's credentials to the git CLI as a header, so they are written to
// no file and no URL.
func (s *GitServer) authArgs() []string {
	var args []string
	if s.opts.TLS {
		args = append(args, "-c", "http.sslVerify=false") // the test's own push helper only
	}
	if s.opts.Username == "" && s.opts.Password == "" {
		return args
	}
	token := base64.StdEncoding.EncodeToString([]byte(s.opts.Username + ":" + s.opts.Password))
	return append(args, "-c", "http.extraHeader=Authorization: Basic "+token)
}

// runGit runs the git CLI with a fixed identity and no user or system configuration, so tests
// behave the same on any machine.
func runGit(ctx context.Context, dir string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=meshcd test", "GIT_AUTHOR_EMAIL=test@meshcd.invalid",
		"GIT_COMMITTER_NAME=meshcd test", "GIT_COMMITTER_EMAIL=test@meshcd.invalid")
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("git %s: %w: %s", redactArgs(args), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func redactArgs(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.HasPrefix(a, "http.extraHeader=") {
			a = "http.extraHeader=<redacted>"
		}
		if u, err := url.Parse(a); err == nil && u.User != nil {
			a = u.Redacted()
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
