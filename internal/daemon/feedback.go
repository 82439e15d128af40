package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshcd/meshcd/gates"
	"github.com/meshcd/meshcd/notify"
	"github.com/prometheus/client_golang/prometheus"
)

// feedback puts a repo's pull-request previews where reviewers look: a commit status per
// design and per pull-request gate on the head, and one comment holding the preview. It runs
// beside the previewer through a notify.Notifier, so a host that is down delays only this.
type feedback struct {
	c        *notify.Client
	n        *notify.Notifier
	provider notify.Provider
	repo     string // owner/name on the host
	web      string // the repository's web page, for links
	branch   string // where status/pr/<id>.md is committed
	// public is the daemon's own address as reviewers reach it (web.publicURL), when set:
	// links then open the pull request in meshcd's web view.
	public string
}

// newFeedback builds a repo's feedback from its config; nil when the repo has none.
func newFeedback(rc RepoConfig, statusBranch, publicURL string, m *metrics, log *slog.Logger) (*feedback, error) {
	fc := rc.Feedback
	if fc == nil {
		return nil, nil
	}
	p := notify.Provider(fc.Provider)
	api, repo, err := notify.APIFor(p, rc.URL)
	if err != nil {
		return nil, err
	}
	if fc.API != "" {
		api = fc.API
	}
	token, err := fc.Token.Read()
	if err != nil {
		return nil, fmt.Errorf("feedback.token: %w", err)
	}
	host := repoHost(rc.URL)
	c, err := notify.NewClient(p, api, string(token), notify.Options{ObserveRateLimit: func(r notify.RateLimit) {
		m.feedbackRateLimit.With(prometheus.Labels{"host": host}).Set(float64(r.Remaining))
	}})
	if err != nil {
		return nil, err
	}
	web, _ := webForm(rc) // the repo's page, without credentials
	return &feedback{c: c, n: notify.NewNotifier(c, log.With("feedback", p)), provider: p, repo: repo, web: web, branch: statusBranch, public: strings.TrimSuffix(publicURL, "/")}, nil
}

// repoHost is the host of a repo URL, for metric labels.
func repoHost(u string) string {
	rest := u[strings.Index(u, "://")+3:]
	if i := strings.IndexAny(rest, "/"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest = rest[i+1:]
	}
	return rest
}

// previewLink is where a reviewer reads the whole preview: the pull request in meshcd's web
// view when the daemon has a public URL, else status/pr/<id>.md in the repo's web view on the
// status branch.
func (f *feedback) previewLink(id string) string {
	if f.public != "" {
		return f.public + "/pulls#pr-" + id
	}
	p := "status/pr/" + id + ".md"
	switch f.provider {
	case notify.GitHub:
		return f.web + "/blob/" + f.branch + "/" + p
	case notify.GitLab:
		return f.web + "/-/blob/" + f.branch + "/" + p
	default:
		return f.web + "/src/branch/" + f.branch + "/" + p
	}
}

// target is the pull request a preview is about, or false when its ref names none (a branch
// previewed as a pull request gets statuses, not a comment).
func target(f *feedback, ref, sha string) (notify.Target, bool) {
	t := notify.Target{Repo: f.repo, SHA: sha}
	if m := prNumber.FindStringSubmatch(ref); m != nil {
		t.PR, _ = strconv.Atoi(m[1])
		return t, true
	}
	return t, false
}

// started says, on the pull request's head, that each design is being previewed.
func (f *feedback) started(ref, sha string, designs []string) {
	t, _ := target(f, ref, sha)
	for _, d := range designs {
		f.n.Status(t, notify.Status{Context: "meshcd/" + d, State: notify.Pending, Description: "previewing: render and server-side diff"})
	}
}

// finished posts a preview's verdicts and its comment.
func (f *feedback) finished(pv Preview, markdown string) {
	t, isPR := target(f, pv.Ref, pv.Revision)
	link := f.previewLink(pv.ID)
	for design, st := range designStatuses(pv) {
		st.Context, st.TargetURL = "meshcd/"+design, link
		f.n.Status(t, st)
	}
	for _, g := range pv.Gates {
		f.n.Status(t, prGateStatus(g, link))
	}
	if isPR {
		const max = 60000 // GitHub's comments hold 65,536 characters
		if len(markdown) > max {
			markdown = markdown[:max] + "\n\n… (cut; the whole preview is in " + link + ")\n"
		}
		f.n.Comment(t, markdown)
	}
}

// closed marks the pull request's comment, if it has one, as about a closed pull request.
func (f *feedback) closed(ref string) {
	t, isPR := target(f, ref, "")
	if isPR {
		f.n.CommentIfAny(t, "**This pull request is closed**: meshcd no longer previews it.\n")
	}
}

// open asks the host whether the pull request at ref is open: a closed or merged one keeps its
// head ref on GitHub and Gitea, so a daemon that starts, or missed the webhook, would preview
// it again. When the host cannot say, the pull request counts as open.
func (f *feedback) open(ctx context.Context, ref string) bool {
	t, isPR := target(f, ref, "")
	if !isPR {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	open, err := f.c.PullRequestOpen(ctx, t)
	return open || err != nil
}

// designStatuses is each design's verdict on a preview: failure with the first problem (an
// invalid design names its file and line), or success with what would change per cluster.
func designStatuses(pv Preview) map[string]notify.Status {
	out := map[string]notify.Status{}
	if pv.Error != "" {
		// The repo did not load: each problem names its design's folder, if it has one.
		for _, line := range strings.Split(pv.Error, "\n") {
			rest, ok := strings.CutPrefix(line, "designs/")
			name, _, nested := strings.Cut(rest, "/")
			if !ok || !nested {
				name = "repo"
			}
			if _, seen := out[name]; !seen {
				out[name] = notify.Status{State: notify.Failure, Description: strings.TrimSpace(line)}
			}
		}
		return out
	}
	changes := map[string][]string{}
	for _, t := range pv.Targets {
		if t.Error != "" {
			if _, failed := out[t.Design]; !failed {
				out[t.Design] = notify.Status{State: notify.Failure, Description: t.Cluster + ": " + strings.Join(strings.Fields(t.Error), " ")}
			}
			continue
		}
		word := "no change"
		if n := len(t.Changes); n == 1 {
			word = "1 change"
		} else if n > 1 {
			word = strconv.Itoa(n) + " changes"
		}
		changes[t.Design] = append(changes[t.Design], t.Cluster+": "+word)
	}
	for _, d := range slices.Sorted(maps.Keys(changes)) {
		if _, failed := out[d]; !failed {
			out[d] = notify.Status{State: notify.Success, Description: strings.Join(changes[d], ", ")}
		}
	}
	return out
}

// prGateStatus is a pull-request gate's verdict as a commit status: its key numbers, or the
// first check that failed.
func prGateStatus(g PreviewGate, link string) notify.Status {
	st := notify.Status{Context: "meshcd/gate/" + g.Design + "/" + g.Gate, TargetURL: link, State: notify.Success}
	switch {
	case g.Error != "":
		st.State, st.Description = notify.Error, g.Error
	case !g.Pass:
		st.State, st.Description = notify.Failure, "failed"
		if g.Aborted != "" {
			st.Description = "stopped: " + g.Aborted
		}
		for _, c := range g.Checks {
			if !c.Pass {
				st.Description = checkText(c)
				break
			}
		}
	default:
		var parts []string
		for _, c := range g.Checks {
			parts = append(parts, checkText(c))
		}
		st.Description = "passed: " + strings.Join(parts, "; ")
	}
	return st
}

func checkText(c gates.Check) string {
	return fmt.Sprintf("%s %s%s (limit %s%s)", c.Name, strconv.FormatFloat(c.Observed, 'g', 4, 64), unitSuffix(c.Unit), strconv.FormatFloat(c.Limit, 'g', 4, 64), unitSuffix(c.Unit))
}

func unitSuffix(u string) string {
	if u == "" {
		return ""
	}
	return " " + u
}
