package sources

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Provider is a Git host whose webhooks meshcd accepts.
type Provider string

const (
	GitHub          Provider = "github"
	GitLab          Provider = "gitlab"
	Gitea           Provider = "gitea" // also Forgejo
	BitbucketServer Provider = "bitbucket-server"
	Generic         Provider = "generic"
)

// Event is what a valid webhook asks for: a poll of these repos (any of the URLs the host
// gives for it) at this ref.
type Event struct {
	Provider Provider
	// RepoURLs are the repository's clone and web addresses as the payload gives them.
	RepoURLs []string
	// Ref is the full ref name pushed (refs/heads/main) or a PR's head ref (refs/pull/7/head).
	Ref string
	// Closed says the pull request was closed or merged. Its head ref usually stays on the
	// host, so a poll alone cannot tell.
	Closed bool
	// Reopened says a closed pull request was opened again.
	Reopened bool
}

// WebhookOptions configures a webhook endpoint.
type WebhookOptions struct {
	Provider Provider
	// Secret is the shared secret (GitLab's token, the HMAC key for the others).
	Secret []byte
	// MaxBodyBytes refuses larger bodies with 413 before reading them.
	MaxBodyBytes int64
	// PerSourceRate and PerSourceBurst limit requests per remote address.
	PerSourceRate  rate.Limit
	PerSourceBurst int
}

// DefaultWebhookOptions accepts bodies up to 1 MiB, 5 requests per second per source.
func DefaultWebhookOptions(p Provider, secret []byte) WebhookOptions {
	return WebhookOptions{Provider: p, Secret: secret, MaxBodyBytes: 1 << 20, PerSourceRate: 5, PerSourceBurst: 20}
}

// NewWebhookHandler returns the handler for one provider's endpoint. The signature is checked
// in constant time before the body is parsed; a valid push or pull-request event is handed to
// onEvent (which must not block: it should debounce and trigger a poll).
func NewWebhookHandler(opts WebhookOptions, onEvent func(Event)) http.Handler {
	h := &webhook{opts: opts, onEvent: onEvent, limiters: map[string]*limiterEntry{}}
	return h
}

type webhook struct {
	opts    WebhookOptions
	onEvent func(Event)

	mu       sync.Mutex
	limiters map[string]*limiterEntry
}

type limiterEntry struct {
	lim  *rate.Limiter
	seen time.Time
}

func (h *webhook) allow(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	if len(h.limiters) > 10000 { // forget quiet sources so the table cannot grow without bound
		for k, e := range h.limiters {
			if now.Sub(e.seen) > time.Minute {
				delete(h.limiters, k)
			}
		}
	}
	e, ok := h.limiters[host]
	if !ok {
		e = &limiterEntry{lim: rate.NewLimiter(h.opts.PerSourceRate, h.opts.PerSourceBurst)}
		h.limiters[host] = e
	}
	e.seen = now
	return e.lim.Allow()
}

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if !h.allow(r) {
		http.Error(w, "too many requests", http.StatusTooManyRequests)
		return
	}
	if r.ContentLength > h.opts.MaxBodyBytes {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	if !h.verify(r.Header, body) {
		http.Error(w, "signature does not match", http.StatusUnauthorized)
		return
	}
	ev, ok, err := parseEvent(h.opts.Provider, r.Header, body)
	if err != nil {
		http.Error(w, "malformed payload", http.StatusBadRequest)
		return
	}
	if ok {
		h.onEvent(ev)
	}
	w.WriteHeader(http.StatusAccepted)
}

// verify checks the request's signature or token against the secret in constant time.
func (h *webhook) verify(header http.Header, body []byte) bool {
	switch h.opts.Provider {
	case GitLab:
		return subtle.ConstantTimeCompare([]byte(header.Get("X-Gitlab-Token")), h.opts.Secret) == 1
	case GitHub:
		return checkHMAC(sha256.New, h.opts.Secret, body, header.Get("X-Hub-Signature-256"), "sha256=")
	case Gitea:
		return checkHMAC(sha256.New, h.opts.Secret, body, header.Get("X-Gitea-Signature"), "")
	case BitbucketServer:
		return checkHMAC(sha256.New, h.opts.Secret, body, header.Get("X-Hub-Signature"), "sha256=") ||
			checkHMAC(sha1.New, h.opts.Secret, body, header.Get("X-Hub-Signature"), "sha1=")
	case Generic:
		return checkHMAC(sha256.New, h.opts.Secret, body, header.Get("X-Signature-256"), "sha256=")
	}
	return false
}

func checkHMAC(newHash func() hash.Hash, secret, body []byte, got, prefix string) bool {
	if got == "" || len(secret) == 0 {
		return false
	}
	sig, ok := strings.CutPrefix(got, prefix)
	if !ok {
		return false
	}
	want, err := hex.DecodeString(sig)
	if err != nil {
		return false
	}
	mac := hmac.New(newHash, secret)
	mac.Write(body)
	return hmac.Equal(mac.Sum(nil), want)
}

// payload holds the fields meshcd reads from every provider's push and PR events.
type payload struct {
	Ref        string `json:"ref"`
	Repository struct {
		CloneURL string `json:"clone_url"`
		HTMLURL  string `json:"html_url"`
		SSHURL   string `json:"ssh_url"`
		// GitLab
		GitHTTPURL string `json:"git_http_url"`
		GitSSHURL  string `json:"git_ssh_url"`
		// Bitbucket Server
		Links struct {
			Clone []struct {
				Href string `json:"href"`
			} `json:"clone"`
		} `json:"links"`
	} `json:"repository"`
	// GitLab
	Project struct {
		GitHTTPURL string `json:"git_http_url"`
		GitSSHURL  string `json:"git_ssh_url"`
	} `json:"project"`
	Number      int    `json:"number"`
	Action      string `json:"action"`
	PullRequest *struct {
		Number int `json:"number"`
	} `json:"pull_request"`
	ObjectAttributes *struct {
		IID    int    `json:"iid"`
		Action string `json:"action"`
	} `json:"object_attributes"`
	// Bitbucket Server
	Changes []struct {
		RefID string `json:"refId"`
	} `json:"changes"`
	// Generic
	Repo string `json:"repo"`
}

// parseEvent reads a push or pull-request event; ok is false for events meshcd ignores
// (pings, issues, ...). A body that is not the JSON it should be is an error.
func parseEvent(p Provider, header http.Header, body []byte) (Event, bool, error) {
	var pl payload
	if err := json.Unmarshal(body, &pl); err != nil {
		return Event{}, false, fmt.Errorf("payload: %w", err)
	}
	ev := Event{Provider: p}
	for _, u := range []string{pl.Repository.CloneURL, pl.Repository.HTMLURL, pl.Repository.SSHURL,
		pl.Repository.GitHTTPURL, pl.Repository.GitSSHURL, pl.Project.GitHTTPURL, pl.Project.GitSSHURL, pl.Repo} {
		if u != "" {
			ev.RepoURLs = append(ev.RepoURLs, u)
		}
	}
	for _, l := range pl.Repository.Links.Clone {
		if l.Href != "" {
			ev.RepoURLs = append(ev.RepoURLs, l.Href)
		}
	}
	switch {
	case pl.PullRequest != nil && (p == GitHub || p == Gitea):
		ev.Ref = fmt.Sprintf("refs/pull/%d/head", pl.PullRequest.Number)
		ev.Closed, ev.Reopened = pl.Action == "closed", pl.Action == "reopened"
	case pl.ObjectAttributes != nil && pl.ObjectAttributes.IID > 0 && p == GitLab:
		ev.Ref = fmt.Sprintf("refs/merge-requests/%d/head", pl.ObjectAttributes.IID)
		ev.Closed = pl.ObjectAttributes.Action == "close" || pl.ObjectAttributes.Action == "merge"
		ev.Reopened = pl.ObjectAttributes.Action == "reopen"
	case len(pl.Changes) > 0:
		ev.Ref = pl.Changes[0].RefID
	default:
		ev.Ref = pl.Ref
	}
	if len(ev.RepoURLs) == 0 || ev.Ref == "" {
		return Event{}, false, nil
	}
	return ev, true, nil
}
