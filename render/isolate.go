package render

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/meshcd/meshcd/internal/race"
	"github.com/meshcd/meshcd/schema"
	"helm.sh/helm/v3/pkg/chart/loader"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Budget bounds one render of a design's manifests (Helm, Kustomize, YAML) in the worker
// process: Helm templates and Kustomize can be made to run for ever, eat memory or produce
// gigabytes, and neither takes a context that stops them.
type Budget struct {
	// Timeout and MaxMemoryBytes bound the worker's time and heap for the render.
	Timeout        time.Duration
	MaxMemoryBytes int64
	// MaxObjects, MaxObjectBytes and MaxBundleBytes cap what a render may produce.
	MaxObjects     int
	MaxObjectBytes int
	MaxBundleBytes int
	// MaxChartArchiveBytes caps what packaged sub-charts (charts/*.tgz, nested too) may
	// decompress to, all together.
	MaxChartArchiveBytes int64
}

// DefaultBudget is what meshcd allows a design's render unless configured otherwise. The time
// is a release build's; a race-built process (the tests') gets race.Slowdown times it.
func DefaultBudget() Budget {
	return Budget{
		Timeout: 30 * time.Second * race.Slowdown, MaxMemoryBytes: 1 << 30,
		MaxObjects: 5000, MaxObjectBytes: 1536 << 10, MaxBundleBytes: 64 << 20,
		MaxChartArchiveBytes: 64 << 20,
	}
}

const renderJobKind = "render"

func init() { schema.RegisterJob(renderJobKind, serveRenderJob) }

// renderJob is what the worker needs to render one design for one cluster: the design and
// cluster as values, and the files of the folders the design can read.
type renderJob struct {
	Design         schema.Design
	Name, Dir      string
	NamespaceOwner bool
	Cluster        schema.Cluster
	ClusterName    string
	Revision       string
	Files          map[string][]byte
	Refused        map[string]string
	Budget         Budget
	SecretKey      []byte
}

type renderAnswer struct {
	Objects  []json.RawMessage
	Digest   string
	Warnings []string
	Error    *Error
	Failure  string
}

// renderIsolated renders a design with manifests in the worker process, sending it only the
// folders the design reads. A render over its budget fails with an Error naming the budget.
func renderIsolated(ctx context.Context, d *schema.Design, c *schema.Cluster, opts Options) (*Bundle, error) {
	repo, err := opts.Repo.repoFiles()
	if err != nil {
		return nil, fmt.Errorf("reading the repo for design %s: %w", d.Name, err)
	}
	job := renderJob{Design: *d, Name: d.Name, Dir: d.Dir, NamespaceOwner: d.NamespaceOwner, Cluster: *c, ClusterName: c.Name,
		Revision: opts.Revision, Files: map[string][]byte{}, Refused: map[string]string{}, Budget: opts.Budget, SecretKey: opts.SecretKey}
	if len(job.SecretKey) == 0 {
		job.SecretKey = processKey() // this process's, not the worker's: digests must agree
	}
	dirs, err := inputDirs(opts.Repo.files, d.Dir)
	if err != nil {
		return nil, fmt.Errorf("design %s: %w", d.Name, err)
	}
	for _, dir := range dirs {
		if err := repo.fs.Walk("/"+dir, func(p string, info fs.FileInfo, err error) error {
			if err != nil || info.IsDir() {
				return err
			}
			data, err := repo.fs.ReadFile(p)
			job.Files[strings.TrimPrefix(p, "/")] = data
			return err
		}); err != nil && repo.fs.Exists("/"+dir) {
			return nil, fmt.Errorf("design %s: reading %s: %w", d.Name, dir, err)
		}
		for p, why := range repo.refused {
			if p == dir || strings.HasPrefix(p, dir+"/") {
				job.Refused[p] = why
			}
		}
	}
	payload, err := json.Marshal(job)
	if err != nil {
		return nil, err
	}
	out, err := opts.Worker.Run(ctx, renderJobKind, payload, opts.Budget.Timeout, opts.Budget.MaxMemoryBytes)
	var berr *schema.BudgetError
	if errors.As(err, &berr) {
		return nil, &Error{Design: d.Name, Cluster: c.Name, Path: "manifests", Message: "render stopped: " + berr.Message, Budget: true}
	}
	if err != nil {
		return nil, fmt.Errorf("design %s on cluster %s: %w", d.Name, c.Name, err)
	}
	var ans renderAnswer
	if err := json.Unmarshal(out, &ans); err != nil {
		return nil, fmt.Errorf("design %s on cluster %s: the render worker's answer: %w", d.Name, c.Name, err)
	}
	if ans.Error != nil {
		ans.Error.Budget = ans.Error.Budget || strings.Contains(ans.Error.Message, "budget")
		return nil, ans.Error
	}
	if ans.Failure != "" {
		return nil, errors.New(ans.Failure)
	}
	b := &Bundle{Design: d.Name, Cluster: c.Name, Revision: opts.Revision, Digest: ans.Digest, Warnings: ans.Warnings}
	for _, raw := range ans.Objects {
		o := &unstructured.Unstructured{}
		if err := o.UnmarshalJSON(raw); err != nil {
			return nil, fmt.Errorf("design %s on cluster %s: the render worker's answer: %w", d.Name, c.Name, err)
		}
		b.Objects = append(b.Objects, o)
	}
	b.secrets = secretValues(b.Objects)
	return b, nil
}

// serveRenderJob runs in the worker process: it renders the design from the files it was
// sent and holds the result to the budget.
func serveRenderJob(payload []byte) ([]byte, error) {
	var job renderJob
	if err := json.Unmarshal(payload, &job); err != nil {
		return nil, fmt.Errorf("render job: %w", err)
	}
	d, c := job.Design, job.Cluster
	d.Name, d.Dir, d.NamespaceOwner, c.Name = job.Name, job.Dir, job.NamespaceOwner, job.ClusterName
	repo := &repoFiles{fs: filesys.MakeFsInMemory(), refused: job.Refused}
	for p, data := range job.Files {
		if err := repo.fs.WriteFile("/"+p, data); err != nil {
			return nil, err
		}
	}
	budget := job.Budget
	if err := checkArchives(repo, d.Dir, budget.MaxChartArchiveBytes); err != nil {
		return json.Marshal(renderAnswer{Error: &Error{Design: d.Name, Cluster: c.Name, Path: "manifests", Message: err.Error()}})
	}
	src := &Repo{copy: repo}
	src.once.Do(func() {})
	b, err := render(context.Background(), &d, &c, Options{Revision: job.Revision, Repo: src, SecretKey: job.SecretKey})
	var ans renderAnswer
	var rerr *Error
	switch {
	case errors.As(err, &rerr):
		ans.Error = rerr
	case err != nil:
		ans.Failure = err.Error()
	default:
		ans.Digest, ans.Warnings = b.Digest, b.Warnings
		total := 0
		if budget.MaxObjects > 0 && len(b.Objects) > budget.MaxObjects {
			ans = renderAnswer{Error: &Error{Design: d.Name, Cluster: c.Name, Path: "manifests",
				Message: fmt.Sprintf("renders %d objects, over the budget of %d", len(b.Objects), budget.MaxObjects)}}
			break
		}
		for _, o := range b.Objects {
			raw, err := o.MarshalJSON()
			if err != nil {
				return nil, err
			}
			if budget.MaxObjectBytes > 0 && len(raw) > budget.MaxObjectBytes {
				ans = renderAnswer{Error: &Error{Design: d.Name, Cluster: c.Name, Path: "manifests",
					Message: fmt.Sprintf("%s is %s, over the budget of %s for one object", ObjectID(o), size(len(raw)), size(budget.MaxObjectBytes))}}
				break
			}
			if total += len(raw); budget.MaxBundleBytes > 0 && total > budget.MaxBundleBytes {
				ans = renderAnswer{Error: &Error{Design: d.Name, Cluster: c.Name, Path: "manifests",
					Message: fmt.Sprintf("renders more than %s, over the budget for one bundle", size(budget.MaxBundleBytes))}}
				break
			}
			ans.Objects = append(ans.Objects, raw)
		}
	}
	return json.Marshal(ans)
}

func size(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// checkArchives adds up what every packaged chart under the design's folder (charts/*.tgz,
// and the archives inside those) decompresses to, and refuses more than max in all: Helm
// holds each archive to its own limit, so many small archives could still fill the memory.
func checkArchives(repo *repoFiles, dir string, max int64) error {
	if max <= 0 {
		return nil
	}
	var total int64
	return repo.fs.Walk("/"+dir, func(p string, info fs.FileInfo, err error) error {
		if err != nil || info.IsDir() || !strings.HasSuffix(p, ".tgz") && !strings.HasSuffix(p, ".tar.gz") {
			return err
		}
		data, err := repo.fs.ReadFile(p)
		if err != nil {
			return err
		}
		n, err := archiveSize(data, max-total)
		total += n
		if err != nil || total > max {
			return fmt.Errorf("packaged charts decompress to more than %s in all (at %s): over the budget", size(int(max)), strings.TrimPrefix(p, "/"))
		}
		return nil
	})
}

// archiveSize is what a chart archive decompresses to, nested archives included; it stops
// counting, with an error, past limit.
func archiveSize(data []byte, limit int64) (int64, error) {
	files, err := loader.LoadArchiveFiles(bytes.NewReader(data))
	if err != nil {
		return limit + 1, err
	}
	var total int64
	for _, f := range files {
		total += int64(len(f.Data))
		if path.Ext(f.Name) == ".tgz" {
			n, err := archiveSize(f.Data, limit-total)
			total += n
			if err != nil {
				return total, err
			}
		}
		if total > limit {
			return total, errors.New("over the limit")
		}
	}
	return total, nil
}
