package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// GitHost is a real Gitea on loopback, with a SQLite database in a temporary folder, an admin
// user and an API token: the Git host meshcd's pull-request feedback and webhooks are tested
// against. The binary is built from its Go module by `make testbin`.
type GitHost struct {
	// URL is the host's web and API root (http://127.0.0.1:PORT); API calls go to URL/api/v1.
	URL string
	// User, Password and Token are the admin's.
	User, Password, Token string

	bin, dir, ini string
	env           []string
	proc          *process
}

// GitHostOptions say where Gitea comes from.
type GitHostOptions struct {
	// BinDir holds the gitea binary (default: as for the clusters, see BinDirEnv).
	BinDir string
}

// giteaBinary finds the gitea binary and the version in its name (gitea -> gitea-v1.27.3).
func giteaBinary(dir string) (bin, version string, err error) {
	if dir == "" {
		dir = os.Getenv(BinDirEnv)
	}
	if dir == "" {
		root, err := moduleRoot()
		if err != nil {
			return "", "", err
		}
		dir = filepath.Join(root, "bin", "testbin")
	}
	bin = filepath.Join(dir, "gitea")
	target, err := os.Readlink(bin)
	if err != nil {
		return "", "", fmt.Errorf("test binary %s is missing: run `make testbin` (or set %s): %w", bin, BinDirEnv, err)
	}
	return bin, strings.TrimPrefix(filepath.Base(target), "gitea-"), nil
}

// StartGitHost starts a Gitea and waits until its API answers. Close stops it and removes its
// data.
func StartGitHost(ctx context.Context, opts GitHostOptions) (*GitHost, error) {
	bin, version, err := giteaBinary(opts.BinDir)
	if err != nil {
		return nil, err
	}
	// Gitea reads its templates and locales from its source tree: the module, as the Go
	// module proxy serves it (cached by the build).
	modDir, err := moduleDir(ctx, "code.gitea.io/gitea@"+version)
	if err != nil {
		return nil, fmt.Errorf("finding Gitea %s's module for its templates: %w", version, err)
	}
	dir, err := os.MkdirTemp("", "meshcd-githost-")
	if err != nil {
		return nil, err
	}
	h := &GitHost{User: "meshcd-admin", Password: randomHex(12), bin: bin, dir: dir, ini: filepath.Join(dir, "app.ini")}
	fail := func(err error) (*GitHost, error) {
		h.Close()
		return nil, err
	}
	ports, err := freePorts(1)
	if err != nil {
		return fail(err)
	}
	h.URL = fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	u, err := user.Current()
	if err != nil {
		return fail(err)
	}
	h.env = append(os.Environ(), "GITEA_WORK_DIR="+dir, "GITEA_CUSTOM="+filepath.Join(dir, "custom"), "HOME="+dir,
		"I_AM_BEING_UNSAFE_RUNNING_AS_ROOT=true")
	ini := fmt.Sprintf(`APP_NAME = meshcd test host
RUN_USER = %[1]s
RUN_MODE = prod
I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true
WORK_PATH = %[2]s

[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = %[3]d
ROOT_URL = %[4]s/
DISABLE_SSH = true
START_SSH_SERVER = false
OFFLINE_MODE = true
STATIC_ROOT_PATH = %[5]s
APP_DATA_PATH = %[2]s/data
LFS_START_SERVER = false

[database]
DB_TYPE = sqlite3
PATH = %[2]s/data/gitea.db

[repository]
ROOT = %[2]s/repos
DEFAULT_BRANCH = main

[security]
INSTALL_LOCK = true
SECRET_KEY = %[6]s
PASSWORD_COMPLEXITY = off
MIN_PASSWORD_LENGTH = 1

[oauth2]
ENABLED = false

[service]
DISABLE_REGISTRATION = true

[queue]
; in memory: Gitea's default (level) queue polls with a backoff of up to 2 s when idle, which
; would add that much to every webhook delivery.
TYPE = channel

[webhook]
ALLOWED_HOST_LIST = loopback
DELIVER_TIMEOUT = 5

[log]
MODE = file
LEVEL = Warn
ROOT_PATH = %[2]s/log

[cron]
ENABLED = false

[indexer]
REPO_INDEXER_ENABLED = false

[mailer]
ENABLED = false

[session]
PROVIDER = memory

[cache]
ADAPTER = memory

[actions]
ENABLED = false
`, u.Username, dir, ports[0], h.URL, modDir, randomHex(32))
	if err := os.WriteFile(h.ini, []byte(ini), 0o600); err != nil {
		return fail(err)
	}
	if _, err := h.cli(ctx, "migrate"); err != nil {
		return fail(err)
	}
	if _, err := h.cli(ctx, "admin", "user", "create", "--admin", "--username", h.User, "--password", h.Password,
		"--email", "admin@meshcd.invalid", "--must-change-password=false"); err != nil {
		return fail(err)
	}
	token, err := h.cli(ctx, "admin", "user", "generate-access-token", "--username", h.User, "--token-name", "meshcd", "--scopes", "all", "--raw")
	if err != nil {
		return fail(err)
	}
	h.Token = strings.TrimSpace(token)
	if h.proc, err = startProcessEnv("gitea", bin, []string{"web", "--config", h.ini}, filepath.Join(dir, "gitea.log"), h.env); err != nil {
		return fail(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var v struct{ Version string }
		if err := h.API(ctx, http.MethodGet, "/version", nil, &v); err == nil && v.Version != "" {
			return h, nil
		}
		if ended, werr := h.proc.exited(); ended {
			return fail(fmt.Errorf("gitea exited: %v: %s", werr, h.proc.logTail(2000)))
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("gitea did not answer within a minute: %s", h.proc.logTail(2000)))
		}
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// cli runs a gitea command against the host's config and returns its output.
func (h *GitHost) cli(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, h.bin, append(args, "--config", h.ini)...)
	cmd.Env = h.env
	cmd.Dir = h.dir
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("gitea %s: %w: %s%s", strings.Join(args[:min(3, len(args))], " "), err, errOut.String(), out.String())
	}
	return out.String(), nil
}

// Close stops Gitea and removes its data.
func (h *GitHost) Close() {
	if h.proc != nil {
		h.proc.stop(5 * time.Second)
	}
	if h.dir != "" {
		_ = os.RemoveAll(h.dir)
	}
}

// API calls the host's REST API as the admin: path is under /api/v1; in is sent as JSON and
// the answer decoded into out when set.
func (h *GitHost) API(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.URL+"/api/v1"+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if h.Token != "" {
		req.Header.Set("Authorization", "token "+h.Token)
	} else {
		req.SetBasicAuth(h.User, h.Password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// HostRepo is a repository on the Git host, owned by its admin.
type HostRepo struct {
	host  *GitHost
	Owner string
	Name  string

	mu      sync.Mutex
	workDir string
}

// CreateRepo makes an empty repository with main as its default branch.
func (h *GitHost) CreateRepo(ctx context.Context, name string) (*HostRepo, error) {
	if err := h.API(ctx, http.MethodPost, "/user/repos", map[string]any{"name": name, "default_branch": "main", "auto_init": false}, nil); err != nil {
		return nil, err
	}
	return &HostRepo{host: h, Owner: h.User, Name: name}, nil
}

// Path is owner/name, as the API names the repository.
func (r *HostRepo) Path() string { return r.Owner + "/" + r.Name }

// CloneURL is the repository's smart-HTTP address, without credentials.
func (r *HostRepo) CloneURL() string { return r.host.URL + "/" + r.Path() + ".git" }

// authURL is CloneURL with the admin's token in it, for pushes.
func (r *HostRepo) authURL() string {
	return strings.Replace(r.CloneURL(), "http://", "http://"+r.host.User+":"+r.host.Token+"@", 1)
}

// Push commits files (nil content deletes the file) on top of branch, creating it if
// needed, and pushes; it returns the new commit. A push that lost a race with someone else's
// (meshcd's status commits) is built again on the new tip and retried, as a person would.
func (r *HostRepo) Push(ctx context.Context, branch string, files map[string][]byte, message string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var err error
	for range 10 {
		var sha string
		if sha, err = r.push(ctx, branch, files, message); err == nil || !strings.Contains(err.Error(), "failed to push") {
			return sha, err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "", err
}

func (r *HostRepo) push(ctx context.Context, branch string, files map[string][]byte, message string) (string, error) {
	if r.workDir == "" {
		r.workDir = filepath.Join(r.host.dir, "work-"+r.Name)
		if _, err := runGit(ctx, "", nil, "init", "--quiet", "--initial-branch=main", r.workDir); err != nil {
			return "", err
		}
	}
	run := func(args ...string) (string, error) { return runGit(ctx, r.workDir, nil, args...) }
	_, _ = run("fetch", "--quiet", r.authURL(), "+refs/heads/*:refs/remotes/origin/*")
	_, _ = run("clean", "-fdq")
	if _, err := run("rev-parse", "--verify", "--quiet", "refs/remotes/origin/"+branch); err == nil {
		if _, err := run("checkout", "--quiet", "--force", "-B", branch, "refs/remotes/origin/"+branch); err != nil {
			return "", err
		}
	} else if _, err := run("rev-parse", "--verify", "--quiet", "refs/remotes/origin/main"); err == nil {
		if _, err := run("checkout", "--quiet", "--force", "-B", branch, "refs/remotes/origin/main"); err != nil {
			return "", err
		}
	} else if _, err := run("checkout", "--quiet", "--orphan", branch); err != nil {
		return "", err
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := filepath.Join(r.workDir, filepath.FromSlash(name))
		if files[name] == nil {
			if _, err := run("rm", "--quiet", "--ignore-unmatch", "--", name); err != nil {
				return "", err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			return "", err
		}
		if _, err := run("add", "--", name); err != nil {
			return "", err
		}
	}
	if _, err := run("commit", "--quiet", "--allow-empty", "-m", message); err != nil {
		return "", err
	}
	if _, err := run("push", "--quiet", r.authURL(), "HEAD:refs/heads/"+branch); err != nil {
		return "", err
	}
	out, err := run("rev-parse", "HEAD")
	return strings.TrimSpace(out), err
}

// OpenPR opens a pull request of head into base and returns its number.
func (r *HostRepo) OpenPR(ctx context.Context, head, base, title string) (int, error) {
	var pr struct{ Number int }
	err := r.host.API(ctx, http.MethodPost, "/repos/"+r.Path()+"/pulls", map[string]string{"head": head, "base": base, "title": title}, &pr)
	return pr.Number, err
}

// ClosePR closes a pull request without merging it.
func (r *HostRepo) ClosePR(ctx context.Context, number int) error {
	return r.host.API(ctx, http.MethodPatch, fmt.Sprintf("/repos/%s/pulls/%d", r.Path(), number), map[string]string{"state": "closed"}, nil)
}

// CommitStatus is a commit status as the host reports it.
type CommitStatus struct {
	Context     string `json:"context"`
	State       string `json:"status"`
	Description string `json:"description"`
	TargetURL   string `json:"target_url"`
}

// Statuses lists every status set on a commit, newest first.
func (r *HostRepo) Statuses(ctx context.Context, sha string) ([]CommitStatus, error) {
	var out []CommitStatus
	err := r.host.API(ctx, http.MethodGet, fmt.Sprintf("/repos/%s/commits/%s/statuses?limit=50", r.Path(), sha), nil, &out)
	return out, err
}

// Comment is a pull request comment as the host reports it.
type Comment struct {
	ID   int64  `json:"id"`
	Body string `json:"body"`
}

// Comments lists a pull request's comments.
func (r *HostRepo) Comments(ctx context.Context, number int) ([]Comment, error) {
	var out []Comment
	err := r.host.API(ctx, http.MethodGet, fmt.Sprintf("/repos/%s/issues/%d/comments", r.Path(), number), nil, &out)
	return out, err
}

// AddWebhook makes the host send push and pull-request events to url, signed with secret.
func (r *HostRepo) AddWebhook(ctx context.Context, url, secret string) error {
	return r.host.API(ctx, http.MethodPost, "/repos/"+r.Path()+"/hooks", map[string]any{
		"type": "gitea", "active": true, "events": []string{"push", "pull_request"},
		"config": map[string]string{"url": url, "content_type": "json", "secret": secret},
	}, nil)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// ReadFile returns a file's content at a ref, read through the host's API.
func (r *HostRepo) ReadFile(ctx context.Context, ref, path string) ([]byte, error) {
	var out struct {
		Content  string `json:"content"`
		Encoding string `json:"encoding"`
	}
	if err := r.host.API(ctx, http.MethodGet, fmt.Sprintf("/repos/%s/contents/%s?ref=%s", r.Path(), path, ref), nil, &out); err != nil {
		return nil, err
	}
	if out.Encoding != "base64" {
		return []byte(out.Content), nil
	}
	return base64.StdEncoding.DecodeString(out.Content)
}
