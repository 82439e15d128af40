package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"

	"github.com/meshcd/meshcd/sources"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// serve starts the HTTP endpoints: health, readiness, metrics, the status API and webhooks.
func (d *Daemon) serve(ctx context.Context) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !d.ready.Load() {
			http.Error(w, "no round finished yet", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, _ *http.Request) {
		type repo struct {
			URL string `json:"url"`
			*repoState
		}
		d.mu.Lock()
		var out []repo
		for _, rc := range d.cfg.Repos {
			out = append(out, repo{URL: sources.Redact(rc.URL), repoState: d.state[rc.URL]})
		}
		data, err := json.MarshalIndent(out, "", "  ")
		d.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(append(data, '\n'))
	})
	for provider, secret := range d.cfg.Webhooks {
		key, err := secret.Read()
		if err != nil {
			return nil, errors.New("webhooks." + provider + ": " + err.Error())
		}
		h := sources.NewWebhookHandler(sources.DefaultWebhookOptions(sources.Provider(provider), key), d.onWebhook)
		mux.Handle("POST /hooks/"+provider, h)
	}
	addr := d.cfg.Listen
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	d.log.Info("serving", "addr", l.Addr().String())
	srv := &http.Server{Handler: mux, BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() { _ = srv.Serve(l) }()
	return srv, nil
}

// onWebhook polls the repos a valid event names at once (the watcher debounces).
func (d *Daemon) onWebhook(ev sources.Event) {
	for _, rc := range d.cfg.Repos {
		for _, u := range ev.RepoURLs {
			if sameRepo(u, rc.URL) && d.watcher != nil {
				d.watcher.Trigger(rc.URL)
			}
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
