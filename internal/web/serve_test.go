package web

import (
	"bufio"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// source is a fleet the test sets, and the change signal the daemon would send.
type source struct {
	mu   sync.Mutex
	f    Fleet
	subs []chan struct{}
}

func (s *source) View() Fleet {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f
}

func (s *source) Subscribe() (<-chan struct{}, func()) {
	c := make(chan struct{}, 1)
	s.mu.Lock()
	s.subs = append(s.subs, c)
	s.mu.Unlock()
	return c, func() {}
}

func (s *source) changed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.subs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

func fleetOf(cells ...Cell) Fleet {
	return Fleet{Repos: []Repo{{URL: "https://git.example.com/team/fleet.git", Branch: "main", Revision: "0123456789abcdef",
		Web: "https://git.example.com/team/fleet", CommitPath: "/commit/",
		Clusters: map[string]map[string]string{"east": {"env": "prod"}, "west": {"env": "prod"}, "lab": {"env": "dev"}},
		Cells:    cells}}}
}

func serve(t *testing.T, src Source, opts Options) *httptest.Server {
	t.Helper()
	if opts.API == nil {
		opts.API = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`{"repos":[]}`)) })
	}
	h, err := NewHandler(src, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, c *http.Client, url string, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestAccessSwitch: one switch covers the view and the API: off answers 404 to both; with a
// token, a request without it gets 401, the bearer token or the cookie set by signing in
// once with ?token= gets the page.
func TestAccessSwitch(t *testing.T) {
	src := &source{f: fleetOf()}
	off := serve(t, src, Options{Access: Off})
	for _, p := range []string{"/", "/api/v1/status", "/pulls", "/events"} {
		if code, _ := get(t, http.DefaultClient, off.URL+p); code != http.StatusNotFound {
			t.Errorf("off: GET %s: %d, want 404", p, code)
		}
	}
	open := serve(t, src, Options{})
	for _, p := range []string{"/", "/api/v1/status"} {
		if code, _ := get(t, http.DefaultClient, open.URL+p); code != http.StatusOK {
			t.Errorf("open: GET %s: %d, want 200", p, code)
		}
	}
	if _, err := NewHandler(src, Options{Access: Token}); err == nil {
		t.Error("access token without a token was accepted")
	}

	tok := serve(t, src, Options{Access: Token, Token: []byte("s3cret")})
	for _, p := range []string{"/", "/api/v1/status", "/static/app.js", "/events"} {
		if code, _ := get(t, http.DefaultClient, tok.URL+p); code != http.StatusUnauthorized {
			t.Errorf("token: GET %s without it: %d, want 401", p, code)
		}
		if code, _ := get(t, http.DefaultClient, tok.URL+p, "Authorization", "Bearer wrong"); code != http.StatusUnauthorized {
			t.Errorf("token: GET %s with a wrong one: %d, want 401", p, code)
		}
	}
	if code, _ := get(t, http.DefaultClient, tok.URL+"/api/v1/status", "Authorization", "Bearer s3cret"); code != http.StatusOK {
		t.Errorf("token: the API with the bearer token: %d", code)
	}
	// A browser signs in once; the cookie then opens every page, and the token leaves the URL.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	resp, err := browser.Get(tok.URL + "/pulls?token=s3cret")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Pull requests") {
		t.Fatalf("signing in: %d", resp.StatusCode)
	}
	if u := resp.Request.URL; u.Path != "/pulls" || u.RawQuery != "" {
		t.Errorf("after signing in the browser is at %s; the token must leave the URL", u)
	}
	if code, _ := get(t, browser, tok.URL+"/"); code != http.StatusOK {
		t.Errorf("a page with the cookie: %d", code)
	}
	if code, _ := get(t, http.DefaultClient, tok.URL+"/?token=nope"); code != http.StatusUnauthorized {
		t.Errorf("signing in with a wrong token: %d, want 401", code)
	}
}

// TestRepoContentIsText: what comes from a repo (a commit message, a preview's change, a
// gate's revision in the chart data) is shown as text and can never become markup or script.
func TestRepoContentIsText(t *testing.T) {
	evil := `<img src=x onerror=alert(1)>`
	f := fleetOf(Cell{Design: "shop", Cluster: "east", Revision: "0123456789", Health: "Current", Error: evil,
		Entries: []Object{{Name: evil, Action: "created"}}})
	f.Repos[0].Message = evil + "\nmore"
	f.Repos[0].Previews = []Preview{{ID: "7", Ref: "refs/pull/7/head", Revision: "abc", Targets: []PreviewTarget{{Design: "shop", Cluster: "east", Changes: []string{evil}}}}}
	f.Repos[0].Gates = []GateHistory{{Design: "shop", Gate: "latency", Cluster: "east",
		Runs: []Run{{Time: time.Unix(1e9, 0), Revision: "</script><script>alert(1)</script>", P99: 3}}}}
	srv := serve(t, &source{f: f}, Options{})
	for _, p := range []string{"/", "/repos/0/designs/shop/clusters/east", "/pulls", "/repos/0/gates/shop/latency/east"} {
		code, body := get(t, http.DefaultClient, srv.URL+p)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d", p, code)
		}
		if strings.Contains(body, "<img src=x") || strings.Contains(body, "<script>alert") {
			t.Errorf("GET %s: repo content became markup:\n%s", p, body)
		}
	}
	_, body := get(t, http.DefaultClient, srv.URL+"/")
	if !strings.Contains(body, "&lt;img src=x onerror=alert(1)&gt;") {
		t.Error("the commit message is not shown as text on the fleet page")
	}
}

// TestFleetPage: every design × cluster, the rows that need a look first, the filters by
// cluster label and by state, and the revision of a cell that is not at its repo's head
// linked to its commit (a cell at the head names none: the repo's line above says it).
func TestFleetPage(t *testing.T) {
	f := fleetOf(
		Cell{Design: "alpha", Cluster: "east", Revision: "0123456789abcdef", Health: "Current"},
		Cell{Design: "alpha", Cluster: "lab", Revision: "0123456789abcdef", Health: "Current"},
		Cell{Design: "zulu", Cluster: "east", Revision: "bbbbbbb222", Health: "Current", Drift: DriftSummary{Detected: 2, Healed: 1}},
		Cell{Design: "zulu", Cluster: "west", Revision: "bbbbbbb222", Error: "apply refused"},
	)
	srv := serve(t, &source{f: f}, Options{})
	_, body := get(t, http.DefaultClient, srv.URL+"/")
	if z, a := strings.Index(body, `data-design="zulu"`), strings.Index(body, `data-design="alpha"`); z < 0 || a < 0 || z > a {
		t.Errorf("zulu (an error, unhealed drift) must come before alpha: %d, %d", z, a)
	}
	for _, want := range []string{"<th>east</th>", "<th>west</th>", "<th>lab</th>", "drifted 1", "healed 1",
		`<a class="rev" href="https://git.example.com/team/fleet/commit/bbbbbbb222">bbbbbbb</a>`, `class="cell error"`,
		"2 cells name the revision they applied, which is not their repo's head"} {
		if !strings.Contains(body, want) {
			t.Errorf("fleet page lacks %q", want)
		}
	}
	// The head is linked once, in the repo's line, not in each cell at it.
	if n := strings.Count(body, "/commit/0123456789abcdef"); n != 1 {
		t.Errorf("the head revision is linked %d times on the fleet page, want once (the repo's line)", n)
	}
	_, body = get(t, http.DefaultClient, srv.URL+"/?label=env%3Ddev")
	if !strings.Contains(body, "<th>lab</th>") || strings.Contains(body, "<th>east</th>") {
		t.Error("label env=dev must keep lab only")
	}
	_, body = get(t, http.DefaultClient, srv.URL+"/?state=drift")
	if !strings.Contains(body, `data-design="zulu"`) || strings.Contains(body, `data-design="alpha"`) {
		t.Error("state drift must keep zulu only")
	}
	// The page's script asks for the main part only.
	_, part := get(t, http.DefaultClient, srv.URL+"/", "X-Partial", "1")
	if strings.Contains(part, "<html") || !strings.Contains(part, `data-design="zulu"`) {
		t.Error("a partial render must be the main part alone")
	}
}

// TestEventsCoalesce: a burst of changes tells a page once or twice, not once per change.
func TestEventsCoalesce(t *testing.T) {
	src := &source{f: fleetOf()}
	srv := serve(t, src, Options{MinInterval: 300 * time.Millisecond})
	resp, err := http.Get(srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	events := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "event: ") {
				events <- sc.Text()
			}
		}
	}()
	for range 50 {
		src.changed()
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(700 * time.Millisecond)
	n := len(events)
	if n < 1 || n > 2 {
		t.Errorf("50 changes within 100 ms told the page %d times; want 1 or 2", n)
	}
}
