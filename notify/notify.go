// Package notify puts what meshcd found about a pull request where its reviewers look: a
// commit status on the pull request's head per design and per pull-request gate, and one
// comment holding the preview, edited in place on every push. It speaks the REST APIs of
// Gitea/Forgejo, GitHub and GitLab. It formats nothing about designs (the daemon does) and
// retries nothing itself (the Notifier does).
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Provider names a Git host's API.
type Provider string

const (
	Gitea  Provider = "gitea" // Gitea and Forgejo
	GitHub Provider = "github"
	GitLab Provider = "gitlab"
)

// State is a commit status's state, in the words Gitea and GitHub use (GitLab's are mapped).
type State string

const (
	Pending State = "pending"
	Success State = "success"
	Failure State = "failure"
	Error   State = "error"
)

// Status is one commit status: Context names it ("meshcd/shop"), and a host shows
// Description beside it, linked to TargetURL.
type Status struct {
	Context, Description, TargetURL string
	State                           State
}

// Target is a pull request on a host: the repository (owner/name; a GitLab project's path),
// its number, and the commit its head points at.
type Target struct {
	Repo string
	PR   int
	SHA  string
}

// Marker is the hidden first line of meshcd's comment: the comment with it is the one meshcd
// edits, so a pull request has exactly one.
const Marker = "<!-- meshcd:preview -->"

// Client calls one host's API with a token. It is safe for concurrent use.
type Client struct {
	provider Provider
	api      *url.URL
	token    string
	http     *http.Client
	// observe, when set, is told of every answer's rate-limit headers.
	observe func(RateLimit)
}

// RateLimit is what a host said about its rate limit in an answer's headers.
type RateLimit struct {
	Remaining int
	Reset     time.Time
}

// Options say how a Client reaches its host.
type Options struct {
	// HTTP is the client requests go through (default: 30 s timeout).
	HTTP *http.Client
	// ObserveRateLimit is told of each answer's rate-limit headers.
	ObserveRateLimit func(RateLimit)
}

// NewClient returns a client of the provider's API at api (Gitea: https://git.example.com/api/v1,
// GitHub: https://api.github.com, GitLab: https://gitlab.example.com/api/v4).
func NewClient(p Provider, api, token string, opts Options) (*Client, error) {
	switch p {
	case Gitea, GitHub, GitLab:
	default:
		return nil, fmt.Errorf("unknown feedback provider %q (gitea, github, gitlab)", p)
	}
	u, err := url.Parse(strings.TrimSuffix(api, "/"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("feedback API URL %q is not an http(s) URL", api)
	}
	if opts.HTTP == nil {
		opts.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{provider: p, api: u, token: token, http: opts.HTTP, observe: opts.ObserveRateLimit}, nil
}

// APIFor is the API URL of the host a repository URL is on, and the repository's path there
// (owner/name, without .git): what a daemon needs when the config names only the repo.
func APIFor(p Provider, repoURL string) (api, repo string, err error) {
	u, err := url.Parse(repoURL)
	if err != nil || u.Host == "" {
		return "", "", fmt.Errorf("repository URL %q: no host to send feedback to", repoURL)
	}
	repo = strings.TrimSuffix(strings.Trim(u.Path, "/"), ".git")
	base := u.Scheme + "://" + u.Host
	switch p {
	case Gitea:
		return base + "/api/v1", repo, nil
	case GitHub:
		if u.Host == "github.com" {
			return "https://api.github.com", repo, nil
		}
		return base + "/api/v3", repo, nil // GitHub Enterprise Server
	case GitLab:
		return base + "/api/v4", repo, nil
	}
	return "", "", fmt.Errorf("unknown feedback provider %q", p)
}

// HTTPError is a host's refusal. Retry says whether asking again later can help (a rate
// limit, a server error), not a refusal of the request itself (a bad token, an unknown repo).
type HTTPError struct {
	Method, URL string
	Code        int
	Body        string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.URL, e.Code, e.Body)
}

// Retry says whether the same request may succeed later.
func (e *HTTPError) Retry() bool {
	return e.Code == http.StatusTooManyRequests || e.Code >= 500 || e.Code == http.StatusForbidden && strings.Contains(strings.ToLower(e.Body), "rate limit")
}

// Retryable reports an error that asking again later can cure: the host unreachable, a rate
// limit, a server error.
func Retryable(err error) bool {
	var h *HTTPError
	if errors.As(err, &h) {
		return h.Retry()
	}
	return err != nil
}

// SetStatus sets a commit status on the target's head commit.
func (c *Client) SetStatus(ctx context.Context, t Target, s Status) error {
	desc := s.Description
	if len(desc) > 140 { // GitHub's limit; Gitea and GitLab truncate too
		desc = desc[:137] + "..."
	}
	switch c.provider {
	case GitLab:
		state := map[State]string{Pending: "running", Success: "success", Failure: "failed", Error: "failed"}[s.State]
		body := map[string]string{"state": state, "name": s.Context, "description": desc}
		if s.TargetURL != "" {
			body["target_url"] = s.TargetURL
		}
		return c.do(ctx, http.MethodPost, "/projects/"+url.PathEscape(t.Repo)+"/statuses/"+t.SHA, body, nil)
	default: // Gitea and GitHub share the shape
		body := map[string]string{"state": string(s.State), "context": s.Context, "description": desc}
		if s.TargetURL != "" {
			body["target_url"] = s.TargetURL
		}
		return c.do(ctx, http.MethodPost, c.repoPath(t)+"/statuses/"+t.SHA, body, nil)
	}
}

// UpsertComment makes the pull request's meshcd comment say body: it edits the comment that
// starts with Marker, or adds one when there is none.
func (c *Client) UpsertComment(ctx context.Context, t Target, body string) error {
	return c.writeComment(ctx, t, body, true)
}

// EditComment makes the pull request's meshcd comment say body if it has one, and adds none.
func (c *Client) EditComment(ctx context.Context, t Target, body string) error {
	return c.writeComment(ctx, t, body, false)
}

func (c *Client) writeComment(ctx context.Context, t Target, body string, create bool) error {
	body = Marker + "\n" + body
	id, err := c.findComment(ctx, t)
	if err != nil {
		return err
	}
	switch {
	case id == 0 && !create:
		return nil
	case c.provider == GitLab && id != 0:
		return c.do(ctx, http.MethodPut, fmt.Sprintf("/projects/%s/merge_requests/%d/notes/%d", url.PathEscape(t.Repo), t.PR, id), map[string]string{"body": body}, nil)
	case c.provider == GitLab:
		return c.do(ctx, http.MethodPost, fmt.Sprintf("/projects/%s/merge_requests/%d/notes", url.PathEscape(t.Repo), t.PR), map[string]string{"body": body}, nil)
	case id != 0:
		return c.do(ctx, http.MethodPatch, fmt.Sprintf("%s/issues/comments/%d", c.repoPath(t), id), map[string]string{"body": body}, nil)
	default:
		return c.do(ctx, http.MethodPost, fmt.Sprintf("%s/issues/%d/comments", c.repoPath(t), t.PR), map[string]string{"body": body}, nil)
	}
}

// PullRequestOpen asks the host whether the target's pull request is open. GitHub and Gitea
// keep a closed or merged pull request's head ref, so its presence alone does not tell.
func (c *Client) PullRequestOpen(ctx context.Context, t Target) (bool, error) {
	var pr struct {
		State string `json:"state"`
	}
	if c.provider == GitLab {
		if err := c.do(ctx, http.MethodGet, fmt.Sprintf("/projects/%s/merge_requests/%d", url.PathEscape(t.Repo), t.PR), nil, &pr); err != nil {
			return false, err
		}
		return pr.State == "opened", nil
	}
	if err := c.do(ctx, http.MethodGet, fmt.Sprintf("%s/pulls/%d", c.repoPath(t), t.PR), nil, &pr); err != nil {
		return false, err
	}
	return pr.State == "open", nil
}

// findComment returns the id of the pull request's meshcd comment, or 0.
func (c *Client) findComment(ctx context.Context, t Target) (int64, error) {
	type comment struct {
		ID   int64  `json:"id"`
		Body string `json:"body"`
	}
	for page := 1; page <= 20; page++ {
		var path string
		if c.provider == GitLab {
			path = fmt.Sprintf("/projects/%s/merge_requests/%d/notes?per_page=100&page=%d", url.PathEscape(t.Repo), t.PR, page)
		} else {
			path = fmt.Sprintf("%s/issues/%d/comments?per_page=100&page=%d", c.repoPath(t), t.PR, page)
		}
		var got []comment
		if err := c.do(ctx, http.MethodGet, path, nil, &got); err != nil {
			return 0, err
		}
		for _, cm := range got {
			if strings.HasPrefix(cm.Body, Marker) {
				return cm.ID, nil
			}
		}
		if len(got) == 0 || c.provider == Gitea { // Gitea lists an issue's comments in one page
			return 0, nil
		}
	}
	return 0, nil
}

func (c *Client) repoPath(t Target) string { return "/repos/" + t.Repo }

// do sends one request and decodes the answer into out (when set). The token is sent as the
// host expects it and never appears in an error.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	u := c.api.String() + path
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch c.provider {
	case GitLab:
		req.Header.Set("PRIVATE-TOKEN", c.token)
	case GitHub:
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	default:
		req.Header.Set("Authorization", "token "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, u, redactToken(err, c.token))
	}
	defer resp.Body.Close()
	c.rateLimit(resp.Header)
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		return &HTTPError{Method: method, URL: u, Code: resp.StatusCode, Body: strings.ReplaceAll(truncate(string(data), 300), c.token, "***")}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, u, err)
		}
	}
	return nil
}

func (c *Client) rateLimit(h http.Header) {
	if c.observe == nil {
		return
	}
	for _, prefix := range []string{"X-RateLimit-", "RateLimit-"} {
		if v := h.Get(prefix + "Remaining"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return
			}
			rl := RateLimit{Remaining: n}
			if r, err := strconv.ParseInt(h.Get(prefix+"Reset"), 10, 64); err == nil {
				rl.Reset = time.Unix(r, 0)
			}
			c.observe(rl)
			return
		}
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func redactToken(err error, token string) error {
	if token == "" || !strings.Contains(err.Error(), token) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), token, "***"))
}
