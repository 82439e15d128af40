package web

import (
	"bytes"
	"crypto/subtle"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Access is the one switch over the view and the status API.
type Access string

const (
	// Off answers 404 to the view and the API alike.
	Off Access = "off"
	// Open serves both to whoever reaches the listen address: for a network or a proxy
	// (with its own sign-in) the operator trusts.
	Open Access = "open"
	// Token serves both only to requests with the bearer token (a browser signs in once with
	// ?token=, which sets an HttpOnly cookie); others get 401.
	Token Access = "token"
)

// Source is what the view reads: the fleet as the daemon last published it, and a signal for
// each change.
type Source interface {
	View() Fleet
	// Subscribe returns a channel that receives after each change (a burst coalesces into
	// one) and the function that ends the subscription.
	Subscribe() (<-chan struct{}, func())
}

// Options configure the handler.
type Options struct {
	Access Access
	// Token is the bearer token when Access is Token.
	Token []byte
	// API serves /api/v1/, behind the same switch.
	API http.Handler
	// MinInterval is the least time between two updates one page is told of (default 200 ms):
	// a burst of syncs refreshes a page once, not once per sync.
	MinInterval time.Duration
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

const tokenCookie = "meshcd-token"

// NewHandler returns the view and the API behind the access switch.
func NewHandler(src Source, opts Options) (http.Handler, error) {
	if opts.Access == "" {
		opts.Access = Open
	}
	switch opts.Access {
	case Off, Open:
	case Token:
		if len(opts.Token) == 0 {
			return nil, fmt.Errorf("web: access token needs a token")
		}
	default:
		return nil, fmt.Errorf("web: access %q is not off, open or token", opts.Access)
	}
	if opts.MinInterval <= 0 {
		opts.MinInterval = 200 * time.Millisecond
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	v := &view{src: src, opts: opts, pages: pages}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", v.page("fleet", v.fleet))
	mux.HandleFunc("GET /repos/{repo}/designs/{design}/clusters/{cluster}", v.page("cell", v.cell))
	mux.HandleFunc("GET /repos/{repo}/gates/{design}/{gate}/{cluster}", v.page("gate", v.gate))
	mux.HandleFunc("GET /repos/{repo}/gates/{design}/{gate}/{cluster}/chart.svg", v.chart)
	mux.HandleFunc("GET /pulls", v.page("pulls", v.pulls))
	mux.HandleFunc("GET /rollouts", v.page("rollouts", v.rollouts))
	mux.HandleFunc("GET /events", v.events)
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	if opts.API != nil {
		mux.Handle("/api/v1/", opts.API)
	}
	return v.guard(mux), nil
}

type view struct {
	src   Source
	opts  Options
	pages map[string]*template.Template
}

// guard applies the access switch, and the headers that keep a page from running anything
// but its own scripts.
func (v *view) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch v.opts.Access {
		case Off:
			http.NotFound(w, r)
			return
		case Token:
			if t := r.URL.Query().Get("token"); t != "" && r.Method == http.MethodGet && v.tokenOK(t) {
				// A browser signs in once; the cookie carries the token to every page and
				// to the event stream (EventSource sends no headers).
				http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: t, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
				q := r.URL.Query()
				q.Del("token")
				u := *r.URL
				u.RawQuery = q.Encode()
				http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
				return
			}
			if !v.authorized(r) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="meshcd"`)
				http.Error(w, "401: meshcd's view and API need its token (Authorization: Bearer, or open /?token=… once in a browser)", http.StatusUnauthorized)
				return
			}
		}
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

func (v *view) tokenOK(t string) bool {
	return subtle.ConstantTimeCompare([]byte(t), v.opts.Token) == 1
}

func (v *view) authorized(r *http.Request) bool {
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && v.tokenOK(t) {
		return true
	}
	c, err := r.Cookie(tokenCookie)
	return err == nil && v.tokenOK(c.Value)
}

// page renders one page from the fleet snapshot: whole, or only its main part when the
// page's script asks for an update (X-Partial).
func (v *view) page(name string, build func(Fleet, *http.Request) (any, int)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		data, code := build(v.src.View(), r)
		if code == http.StatusNotFound {
			http.NotFound(w, r)
			return
		}
		tmpl := "layout"
		if r.Header.Get("X-Partial") == "1" {
			tmpl = "main"
		}
		var b bytes.Buffer
		if err := v.pages[name].ExecuteTemplate(&b, tmpl, data); err != nil {
			http.Error(w, "rendering "+name+": "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(b.Bytes())
	}
}

// chart serves a gate's latest SVG histogram, as an image only.
func (v *view) chart(w http.ResponseWriter, r *http.Request) {
	repo, ok := repoAt(v.src.View(), r)
	if !ok {
		http.NotFound(w, r)
		return
	}
	for _, g := range repo.Gates {
		if g.Design != r.PathValue("design") || g.Gate != r.PathValue("gate") || g.Cluster != r.PathValue("cluster") {
			continue
		}
		svg := g.Chart // the latest run's, maybe not committed yet
		if n, err := strconv.Atoi(r.URL.Query().Get("run")); err == nil {
			svg = nil
			if n >= 0 && n < len(g.Runs) && g.Runs[n].Chart != "" && repo.Files != nil {
				svg, _ = fs.ReadFile(repo.Files, g.Runs[n].Chart)
			}
		}
		if len(svg) == 0 {
			break
		}
		w.Header().Set("Content-Type", "image/svg+xml")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox")
		w.Write(svg)
		return
	}
	http.NotFound(w, r)
}

// events tells a page of every change by server-sent events, at most one per MinInterval,
// with a comment every 25 s so proxies keep the stream open.
func (v *view) events(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // the stream outlives the server's write timeout
	changes, cancel := v.src.Subscribe()
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 1000\n\n")
	if rc.Flush() != nil {
		return
	}
	keepAlive := time.NewTicker(25 * time.Second)
	defer keepAlive.Stop()
	n := 0
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keepAlive.C:
			fmt.Fprint(w, ": keep-alive\n\n")
		case <-changes:
			n++
			fmt.Fprintf(w, "event: change\ndata: %d\n\n", n)
			if rc.Flush() != nil {
				return
			}
			select { // what changes during the pause is told next
			case <-r.Context().Done():
				return
			case <-time.After(v.opts.MinInterval):
			}
			continue
		}
		if rc.Flush() != nil {
			return
		}
	}
}

func repoAt(f Fleet, r *http.Request) (Repo, bool) {
	i, err := strconv.Atoi(r.PathValue("repo"))
	if err != nil || i < 0 || i >= len(f.Repos) {
		return Repo{}, false
	}
	return f.Repos[i], true
}
