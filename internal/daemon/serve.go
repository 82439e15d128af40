package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/meshcd/meshcd/internal/web"
	"github.com/meshcd/meshcd/sources"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// serve starts the HTTP endpoints: health, readiness, metrics, the status API and webhooks.
// Handlers read only what the controllers publish; none waits on a controller.
func (d *Daemon) serve(ctx context.Context) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := d.readiness()
		if !ok {
			http.Error(w, why, http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{}))
	api := http.NewServeMux()
	api.HandleFunc("GET /api/v1/status", d.serveStatus)
	webOpts := web.Options{Access: web.Access(d.cfg.Web.Access), API: api}
	if d.cfg.Web.Token != nil {
		token, err := d.cfg.Web.Token.Read()
		if err != nil {
			return nil, errors.New("web.token: " + err.Error())
		}
		if len(bytes.TrimSpace(token)) == 0 {
			return nil, errors.New("web.token: the token is empty")
		}
		webOpts.Token = bytes.TrimSpace(token)
	}
	view, err := web.NewHandler(d, webOpts)
	if err != nil {
		return nil, err
	}
	mux.Handle("/", view)
	for provider, secret := range d.cfg.Webhooks {
		key, err := secret.Read()
		if err != nil {
			return nil, errors.New("webhooks." + provider + ": " + err.Error())
		}
		if len(key) == 0 {
			// An empty HMAC key signs anything anyone sends: refuse to start rather than
			// accept every webhook.
			return nil, errors.New("webhooks." + provider + ": the secret is empty")
		}
		h := sources.NewWebhookHandler(sources.DefaultWebhookOptions(sources.Provider(provider), key), d.onWebhook)
		mux.Handle("POST /hooks/"+provider, h)
	}
	addr := d.cfg.Listen
	if addr == "" {
		addr = defaultListen
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	d.log.Info("serving", "addr", l.Addr().String())
	headerTimeout := d.readHeaderTimeout
	if headerTimeout <= 0 {
		headerTimeout = 10 * time.Second
	}
	srv := &http.Server{Handler: mux, BaseContext: func(net.Listener) context.Context { return ctx },
		ReadHeaderTimeout: headerTimeout, ReadTimeout: time.Minute, WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	go func() { _ = srv.Serve(limitPerSource(l, maxConnsPerSource)) }()
	return srv, nil
}

// readiness is ready once every repo applied its first revision and while every repo's Git
// server answers; otherwise it says which repo is not and why.
func (d *Daemon) readiness() (bool, string) {
	t := d.term.Load()
	if t == nil {
		return false, "not leading: another replica holds this shard's Lease\n"
	}
	var why []string
	for _, c := range t.repos {
		s := c.Status()
		switch {
		case s.Git.Poll.Error != "":
			why = append(why, fmt.Sprintf("repo %s: %d polls failed in a row: %s", s.URL, s.Git.Poll.Failures, s.Git.Poll.Error))
		case !s.Ready && s.Error != "":
			why = append(why, fmt.Sprintf("repo %s: no revision applied yet: %s", s.URL, s.Error))
		case !s.Ready:
			why = append(why, fmt.Sprintf("repo %s: its first round has not finished", s.URL))
		}
	}
	if len(why) > 0 {
		return false, strings.Join(why, "\n") + "\n"
	}
	return true, ""
}

// serveStatus is /api/v1/status: every repo's published status.
func (d *Daemon) serveStatus(w http.ResponseWriter, _ *http.Request) {
	out := struct {
		Leading bool         `json:"leading"`
		Repos   []RepoStatus `json:"repos"`
	}{Repos: []RepoStatus{}}
	if t := d.term.Load(); t != nil {
		out.Leading = true
		for _, c := range t.repos {
			out.Repos = append(out.Repos, c.Status())
		}
	}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(data, '\n'))
}

// onWebhook polls the repos a valid event names at once (the watcher debounces).
func (d *Daemon) onWebhook(ev sources.Event) {
	t := d.term.Load()
	if t == nil {
		return
	}
	for _, c := range t.repos {
		for _, u := range ev.RepoURLs {
			if !sameRepo(u, c.cfg.URL) {
				continue
			}
			if ok, _ := path.Match(c.cfg.PullRequests, ev.Ref); ok && (ev.Closed || ev.Reopened) && c.d.shard.ID == 0 {
				c.inbox.put(prState{ref: ev.Ref, closed: ev.Closed})
			}
			c.watcher.Trigger(c.cfg.URL)
			break
		}
	}
}

func sameRepo(a, b string) bool {
	norm := func(s string) string {
		s = strings.TrimSuffix(strings.TrimSuffix(strings.ToLower(s), "/"), ".git")
		if i := strings.Index(s, "://"); i >= 0 {
			s = s[i+3:]
		}
		if i := strings.LastIndex(s, "@"); i >= 0 {
			s = s[i+1:]
		}
		return s
	}
	return norm(a) == norm(b)
}
