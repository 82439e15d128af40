// Package daemon composes meshcd's stages into the long-running `meshcd run` as independent
// controllers: a source loop per repo (its own poll schedule, URL policy, backoff, evaluation
// worker and committer), a sync queue per cluster, a drift detector per cluster and a gate
// runner. Nothing waits on what it does not depend on. Each stage stays a plain function in
// its own package; this package only wires and schedules them. docs/architecture.md draws it.
package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/meshcd/meshcd/fleet"
	"github.com/meshcd/meshcd/gates"
	"github.com/meshcd/meshcd/render"
	"github.com/meshcd/meshcd/schema"
	"github.com/meshcd/meshcd/sources"
	"sigs.k8s.io/yaml"
)

// Config is meshcd.yaml: where the fleet repos are, how to reach the clusters, and the
// daemon's own settings. Credentials live here (or in files and environment variables it
// names), never in the fleet repo.
type Config struct {
	// Listen is the address of /healthz, /readyz, /metrics, /api/v1/status and webhooks.
	Listen string `json:"listen"`
	// CacheDir keeps fetched Git objects across restarts.
	CacheDir string       `json:"cacheDir"`
	Repos    []RepoConfig `json:"repos"`
	// Clusters are the fleet repo's clusters by name, with their credentials.
	Clusters map[string]fleet.Credentials `json:"clusters"`
	// Web is the one switch over the web view (under /) and the status API (/api/v1/).
	Web WebConfig `json:"web,omitempty"`
	// Webhooks maps a provider (github, gitlab, gitea, bitbucket-server, generic) to its secret.
	Webhooks map[string]Secret `json:"webhooks,omitempty"`
	// PerCluster bounds the designs synced to one cluster at once.
	PerCluster int `json:"perCluster,omitempty"`
	// Home reaches meshcd's own cluster, where `secret:` cluster credentials are read
	// (default: leaderElection's credentials, else the pod's in-cluster service account).
	Home *fleet.Credentials `json:"home,omitempty"`
	// Gates bounds the load meshcd sends.
	Gates GatesConfig `json:"gates,omitempty"`
	// Render bounds the rendering of each design's manifests (Helm, Kustomize, YAML) in the
	// repo's worker process.
	Render RenderConfig `json:"render,omitempty"`
	// LeaderElection, when set, lets several replicas run: one Lease per shard.
	LeaderElection *LeaderElection `json:"leaderElection,omitempty"`
}

// RepoConfig is one fleet repo.
type RepoConfig struct {
	URL    string `json:"url"`
	Branch string `json:"branch"`
	// Interval is how often the repo is polled ("30s"); webhooks poll at once.
	Interval string `json:"interval,omitempty"`
	// Schedule polls on a cron spec instead ("*/5 * * * *", "@every 10m", optional seconds
	// field); without Interval the repo is then polled only on it and on webhooks.
	Schedule string `json:"schedule,omitempty"`
	// Username and Password for https (Password usually from a file or the environment).
	Username string  `json:"username,omitempty"`
	Password *Secret `json:"password,omitempty"`
	// SSH is a private key for ssh:// URLs, checked against known_hosts.
	SSH *SSHConfig `json:"ssh,omitempty"`
	// AllowHTTP and AllowFile permit plain http:// and file:// URLs (tests, local demos).
	AllowHTTP bool `json:"allowHTTP,omitempty"`
	AllowFile bool `json:"allowFile,omitempty"`
	// StatusBranch receives status commits (default: Branch).
	StatusBranch string `json:"statusBranch,omitempty"`
	// PullRequests is a glob of refs previewed as pull requests: refs/pull/*/head on
	// GitHub and Gitea, refs/merge-requests/*/head on GitLab, refs/heads/feature/* elsewhere.
	PullRequests string `json:"pullRequests,omitempty"`
	// Feedback posts each preview to the pull request itself: commit statuses and one comment.
	Feedback *FeedbackConfig `json:"feedback,omitempty"`
}

// FeedbackConfig is how meshcd reaches a repo's Git host to post pull-request feedback.
type FeedbackConfig struct {
	// Provider is gitea (also Forgejo), github or gitlab.
	Provider string `json:"provider"`
	// API is the host's API root; by default it follows from the repo's URL
	// (https://host/api/v1 for Gitea, https://api.github.com, https://host/api/v4 for GitLab).
	API string `json:"api,omitempty"`
	// Token may set commit statuses and comment on pull requests; never logged or written.
	Token Secret `json:"token"`
}

// GatesConfig bounds gate runs: where their load may go and how much of it. At most one load
// runs per target cluster at a time, since two would skew each other's numbers. A design
// cannot widen any of this: gates are written by whoever can push or open a pull request.
type GatesConfig struct {
	// MaxConcurrent is how many gate loads run at once in all (default 4).
	MaxConcurrent int `json:"maxConcurrent,omitempty"`
	// AllowLoopback and AllowPrivate let gates load loopback addresses and private ranges
	// (in-cluster Services have private addresses). Link-local and metadata addresses, and
	// the daemon's own listen address, are always refused.
	AllowLoopback bool `json:"allowLoopback,omitempty"`
	AllowPrivate  bool `json:"allowPrivate,omitempty"`
	// PreviewHosts are the only hosts a pull request's gates may load ("host", "host:port",
	// globs like "*.preview.example.com"); with none, pull requests run no gate.
	PreviewHosts []string `json:"previewHosts,omitempty"`
	// Ceilings no design can exceed (defaults: 64 connections, 2000 QPS, 15m with warm-up,
	// 1,000,000 requests, a 1 MiB payload, 32 headers).
	MaxConnections  int     `json:"maxConnections,omitempty"`
	MaxQPS          float64 `json:"maxQPS,omitempty"`
	MaxDuration     string  `json:"maxDuration,omitempty"`
	MaxRequests     int     `json:"maxRequests,omitempty"`
	MaxPayloadBytes int     `json:"maxPayloadBytes,omitempty"`
	MaxHeaders      int     `json:"maxHeaders,omitempty"`
}

// RenderConfig bounds one render of a design's manifests; the defaults are
// render.DefaultBudget's (30 s, 1 GiB, 5,000 objects, 1.5 MiB per object, 64 MiB per bundle,
// 64 MiB of packaged sub-charts).
type RenderConfig struct {
	Timeout        string `json:"timeout,omitempty"`
	MaxMemoryBytes int64  `json:"maxMemoryBytes,omitempty"`
	MaxObjects     int    `json:"maxObjects,omitempty"`
}

// budget is the render budget the config describes.
func (r RenderConfig) budget() render.Budget {
	b := render.DefaultBudget()
	if d, err := time.ParseDuration(r.Timeout); err == nil && d > 0 {
		b.Timeout = d
	}
	if r.MaxMemoryBytes > 0 {
		b.MaxMemoryBytes = r.MaxMemoryBytes
	}
	if r.MaxObjects > 0 {
		b.MaxObjects = r.MaxObjects
	}
	return b
}

// policy is the gate policy the config describes; self is the daemon's listen address.
func (g GatesConfig) policy(listen string) gates.Policy {
	p := gates.DefaultPolicy()
	p.AllowLoopback, p.AllowPrivate, p.PreviewHosts = g.AllowLoopback, g.AllowPrivate, g.PreviewHosts
	if g.MaxConnections > 0 {
		p.Limits.MaxConnections = g.MaxConnections
	}
	if g.MaxQPS > 0 {
		p.Limits.MaxQPS = g.MaxQPS
	}
	if d, err := time.ParseDuration(g.MaxDuration); err == nil && d > 0 {
		p.Limits.MaxDuration = d
	}
	if g.MaxRequests > 0 {
		p.Limits.MaxRequests = g.MaxRequests
	}
	if g.MaxPayloadBytes > 0 {
		p.Limits.MaxPayloadBytes = g.MaxPayloadBytes
	}
	if g.MaxHeaders > 0 {
		p.Limits.MaxHeaders = g.MaxHeaders
	}
	if listen == "" {
		listen = defaultListen
	}
	if ap, err := netip.ParseAddrPort(listen); err == nil {
		p.Self = append(p.Self, ap)
	} else if host, port, err := net.SplitHostPort(listen); err == nil && host == "" {
		if ap, err := netip.ParseAddrPort("0.0.0.0:" + port); err == nil {
			p.Self = append(p.Self, ap)
		}
	}
	return p
}

// defaultListen is where the daemon serves when the config does not say.
const defaultListen = "127.0.0.1:8080"

// SSHConfig is an SSH key and the known_hosts the server is checked against.
type SSHConfig struct {
	User       string  `json:"user,omitempty"`
	PrivateKey Secret  `json:"privateKey"`
	KnownHosts *Secret `json:"knownHosts,omitempty"`
	// InsecureIgnoreHostKey trusts any host key; without known_hosts it must be set.
	InsecureIgnoreHostKey bool `json:"insecureIgnoreHostKey,omitempty"`
}

// WebConfig switches the web view and the status API: access open (the default: for a
// network or a proxy with its own sign-in), token (a bearer token, read from a file or the
// environment), or off (both answer 404).
type WebConfig struct {
	Access string  `json:"access,omitempty"`
	Token  *Secret `json:"token,omitempty"`
	// PublicURL is where people reach the view (https://meshcd.example.com): pull-request
	// feedback links to it.
	PublicURL string `json:"publicURL,omitempty"`
}

// Secret is a value from a file or an environment variable, never written inline.
type Secret struct {
	File string `json:"file,omitempty"`
	Env  string `json:"env,omitempty"`
}

// Read returns the secret's value.
func (s Secret) Read() ([]byte, error) {
	switch {
	case s.File != "":
		b, err := os.ReadFile(s.File)
		return []byte(strings.TrimSpace(string(b))), err
	case s.Env != "":
		v, ok := os.LookupEnv(s.Env)
		if !ok {
			return nil, fmt.Errorf("environment variable %s is not set", s.Env)
		}
		return []byte(v), nil
	}
	return nil, errors.New("give file or env")
}

// ConfigError lists every problem of a config file, each with its path.
type ConfigError struct {
	File     string
	Problems []string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("%s: %d problems:\n  %s", e.File, len(e.Problems), strings.Join(e.Problems, "\n  "))
}

// LoadConfig reads and checks a config file, reporting every problem at once: unknown keys,
// wrong types, missing or invalid values.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseConfig(path, data)
}

// ParseConfig is LoadConfig for bytes already read; file names the source in errors.
func ParseConfig(file string, data []byte) (*Config, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, &ConfigError{File: file, Problems: []string{err.Error()}}
	}
	var raw any
	if err := json.Unmarshal(js, &raw); err != nil {
		return nil, &ConfigError{File: file, Problems: []string{err.Error()}}
	}
	var problems []string
	unknownKeys(&problems, "", raw, reflect.TypeOf(Config{}))
	var cfg Config
	if err := json.Unmarshal(js, &cfg); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) == 0 {
		problems = cfg.check()
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, &ConfigError{File: file, Problems: problems}
	}
	return &cfg, nil
}

// unknownKeys walks the decoded YAML beside the Go type and reports every key the type does
// not have, with its path.
func unknownKeys(problems *[]string, path string, v any, t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return // the typed decode reports it
		}
		fields := map[string]reflect.Type{}
		var add func(t reflect.Type)
		add = func(t reflect.Type) {
			for i := range t.NumField() {
				f := t.Field(i)
				name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
				switch {
				case f.Anonymous && name == "":
					add(f.Type) // an embedded struct's fields are inlined
				case name != "" && name != "-":
					fields[name] = f.Type
				}
			}
		}
		add(t)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			ft, ok := fields[k]
			if !ok {
				*problems = append(*problems, fmt.Sprintf("%s: unknown key", join(path, k)))
				continue
			}
			unknownKeys(problems, join(path, k), m[k], ft)
		}
	case reflect.Map:
		if m, ok := v.(map[string]any); ok {
			for k, item := range m {
				unknownKeys(problems, join(path, k), item, t.Elem())
			}
		}
	case reflect.Slice:
		if l, ok := v.([]any); ok {
			for i, item := range l {
				unknownKeys(problems, fmt.Sprintf("%s[%d]", path, i), item, t.Elem())
			}
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// check reports every invalid or missing value.
func (c *Config) check() []string {
	var p []string
	switch c.Web.Access {
	case "", "open", "off":
		if c.Web.Token != nil {
			p = append(p, "web.token: only with access: token")
		}
	case "token":
		if c.Web.Token == nil || (c.Web.Token.File == "" && c.Web.Token.Env == "") {
			p = append(p, "web.token: access token needs a token: give file or env")
		}
	default:
		p = append(p, fmt.Sprintf("web.access: %q is not open, token or off", c.Web.Access))
	}
	if u := c.Web.PublicURL; u != "" {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
			p = append(p, fmt.Sprintf("web.publicURL: %q is not an http(s) URL", u))
		}
	}
	if len(c.Repos) == 0 {
		p = append(p, "repos: at least one repo is needed")
	}
	for i, r := range c.Repos {
		at := fmt.Sprintf("repos[%d]", i)
		if r.URL == "" {
			p = append(p, at+".url: required")
		} else if err := (sources.URLPolicy{AllowHTTP: r.AllowHTTP, AllowFile: r.AllowFile}).Check(r.URL); err != nil {
			p = append(p, at+".url: "+err.Error())
		} else if isSSH(r.URL) && r.SSH == nil {
			// go-git would fall back to an SSH agent: whatever keys the host's agent holds.
			p = append(p, at+".ssh: required for an ssh URL (meshcd uses no SSH agent)")
		}
		if r.Branch == "" {
			p = append(p, at+".branch: required")
		}
		if r.Interval != "" {
			if d, err := time.ParseDuration(r.Interval); err != nil || d <= 0 {
				p = append(p, fmt.Sprintf("%s.interval: %q is not a positive duration", at, r.Interval))
			}
		}
		if r.Schedule != "" {
			if _, err := schema.CronParser.Parse(r.Schedule); err != nil {
				p = append(p, fmt.Sprintf("%s.schedule: %q: %v", at, r.Schedule, err))
			}
		}
		if fb := r.Feedback; fb != nil {
			switch fb.Provider {
			case "gitea", "github", "gitlab":
			default:
				p = append(p, fmt.Sprintf("%s.feedback.provider: %q is not gitea, github or gitlab", at, fb.Provider))
			}
			if fb.Token.File == "" && fb.Token.Env == "" {
				p = append(p, at+".feedback.token: give file or env")
			}
			if r.PullRequests == "" {
				p = append(p, at+".feedback: needs pullRequests, the refs it gives feedback on")
			}
		}
		if r.Password != nil && r.Password.File == "" && r.Password.Env == "" {
			p = append(p, at+".password: give file or env")
		}
		if r.SSH != nil {
			if r.SSH.PrivateKey.File == "" && r.SSH.PrivateKey.Env == "" {
				p = append(p, at+".ssh.privateKey: give file or env")
			}
			if r.SSH.KnownHosts == nil && !r.SSH.InsecureIgnoreHostKey {
				p = append(p, at+".ssh.knownHosts: required (or insecureIgnoreHostKey: true, which trusts any server)")
			}
		}
	}
	if len(c.Clusters) == 0 {
		p = append(p, "clusters: at least one cluster is needed")
	}
	for name, cr := range c.Clusters {
		n := 0
		if cr.Kubeconfig != "" {
			n++
		}
		if cr.InCluster {
			n++
		}
		if cr.Secret != nil {
			n++
		}
		if n != 1 {
			p = append(p, fmt.Sprintf("clusters.%s: give exactly one of kubeconfig, inCluster or secret", name))
		}
	}
	for name, s := range c.Webhooks {
		switch name {
		case "github", "gitlab", "gitea", "bitbucket-server", "generic":
		default:
			p = append(p, fmt.Sprintf("webhooks.%s: unknown provider (github, gitlab, gitea, bitbucket-server, generic)", name))
		}
		if s.File == "" && s.Env == "" {
			p = append(p, fmt.Sprintf("webhooks.%s: give file or env", name))
		}
	}
	if le := c.LeaderElection; le != nil {
		if le.Namespace == "" {
			p = append(p, "leaderElection.namespace: required")
		}
		if le.LeaseDuration != "" {
			if d, err := time.ParseDuration(le.LeaseDuration); err != nil || d < time.Second {
				p = append(p, fmt.Sprintf("leaderElection.leaseDuration: %q is not a duration of at least 1s", le.LeaseDuration))
			}
		}
	}
	if c.PerCluster < 0 {
		p = append(p, "perCluster: must not be negative")
	}
	if c.Gates.MaxConcurrent < 0 {
		p = append(p, "gates.maxConcurrent: must not be negative")
	}
	if c.Gates.MaxConnections < 0 || c.Gates.MaxQPS < 0 || c.Gates.MaxRequests < 0 || c.Gates.MaxPayloadBytes < 0 || c.Gates.MaxHeaders < 0 {
		p = append(p, "gates: ceilings must not be negative")
	}
	if c.Render.Timeout != "" {
		if d, err := time.ParseDuration(c.Render.Timeout); err != nil || d <= 0 {
			p = append(p, fmt.Sprintf("render.timeout: %q is not a positive duration", c.Render.Timeout))
		}
	}
	if c.Render.MaxMemoryBytes < 0 || c.Render.MaxObjects < 0 {
		p = append(p, "render: budgets must not be negative")
	}
	if c.Gates.MaxDuration != "" {
		if d, err := time.ParseDuration(c.Gates.MaxDuration); err != nil || d <= 0 {
			p = append(p, fmt.Sprintf("gates.maxDuration: %q is not a positive duration", c.Gates.MaxDuration))
		}
	}
	for i, h := range c.Gates.PreviewHosts {
		if _, err := path.Match(h, ""); err != nil || h == "" {
			p = append(p, fmt.Sprintf("gates.previewHosts[%d]: %q is not a host or glob", i, h))
		}
	}
	for i, r := range c.Repos {
		for j := range i {
			if c.Repos[j].URL == r.URL && c.Repos[j].Branch == r.Branch {
				p = append(p, fmt.Sprintf("repos[%d]: the same url and branch as repos[%d]", i, j))
			}
		}
	}
	return p
}

// isSSH is an ssh:// or scp-like (git@host:org/repo) address.
func isSSH(url string) bool {
	if scheme, _, ok := strings.Cut(url, "://"); ok {
		return scheme == "ssh"
	}
	at := strings.Index(url, "@")
	return at >= 0 && strings.Contains(url[at:], ":")
}

// interval is the repo's poll interval: as configured, a day when it polls on a schedule,
// otherwise one minute.
func (r RepoConfig) interval() time.Duration {
	if d, err := time.ParseDuration(r.Interval); err == nil && d > 0 {
		return d
	}
	if r.Schedule != "" {
		return 24 * time.Hour
	}
	return time.Minute
}
