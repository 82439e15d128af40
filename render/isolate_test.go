package render

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/meshcd/meshcd/schema"
)

func renderWorker(t *testing.T) *schema.Worker {
	t.Helper()
	w, err := schema.SelfWorker()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}

// renderEach renders every design of the repo for every cluster it targets.
func renderEach(t *testing.T, dir string, opts Options) map[string]*Bundle {
	t.Helper()
	fsys := os.DirFS(dir)
	fl, designs, err := schema.Load(context.Background(), fsys, schema.DefaultLoadOptions())
	if err != nil {
		t.Fatal(err)
	}
	opts.Repo = NewRepo(fsys)
	out := map[string]*Bundle{}
	for i := range designs {
		for _, c := range designs[i].TargetClusters(fl) {
			b, err := Render(context.Background(), &designs[i], &c, opts)
			if err != nil {
				t.Fatal(err)
			}
			out[b.Design+"/"+b.Cluster] = b
		}
	}
	return out
}

// TestWorkerRendersLikeThisProcess: Helm charts, kustomize bases and YAML folders rendered in
// the worker process give exactly the bundles an in-process render gives.
func TestWorkerRendersLikeThisProcess(t *testing.T) {
	w := renderWorker(t)
	for _, dir := range []string{"../examples/platform", "../examples/istio"} {
		want := renderEach(t, dir, Options{Revision: "r1"})
		got := renderEach(t, dir, Options{Revision: "r1", Worker: w})
		if len(want) == 0 || len(got) != len(want) {
			t.Fatalf("%s: %d bundles in the worker, %d here", dir, len(got), len(want))
		}
		for k, b := range want {
			g := got[k]
			if g.Digest != b.Digest || len(g.Objects) != len(b.Objects) {
				t.Fatalf("%s %s: digest %s vs %s, %d vs %d objects", dir, k, g.Digest, b.Digest, len(g.Objects), len(b.Objects))
			}
			for i := range b.Objects {
				if diff := cmp.Diff(b.Objects[i].Object, g.Objects[i].Object); diff != "" {
					t.Fatalf("%s %s %s (-here +worker):\n%s", dir, k, ObjectID(b.Objects[i]), diff)
				}
			}
		}
	}
	if w.Starts() != 1 {
		t.Errorf("%d worker processes for all renders, want 1", w.Starts())
	}
}

// bombRepo is a fleet repo whose design ships a chart with the given template and packaged
// sub-charts.
func bombRepo(t *testing.T, template string, subcharts map[string][]byte) string {
	t.Helper()
	root := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, "clusters"), 0o755))
	write(t, filepath.Join(root, "clusters/east.cue"), `cluster: east: {labels: env: "prod", mesh: "istio"}`)
	must(t, os.MkdirAll(filepath.Join(root, "designs/bomb/chart/templates"), 0o755))
	must(t, os.MkdirAll(filepath.Join(root, "designs/bomb/chart/charts"), 0o755))
	write(t, filepath.Join(root, "designs/bomb/design.cue"), `design: bomb: {namespace: "bomb", manifests: [{helm: chart: "./chart"}]}`)
	write(t, filepath.Join(root, "designs/bomb/chart/Chart.yaml"), "apiVersion: v2\nname: bomb\nversion: 0.1.0\n")
	write(t, filepath.Join(root, "designs/bomb/chart/templates/cm.yaml"), template)
	for name, data := range subcharts {
		must(t, os.WriteFile(filepath.Join(root, "designs/bomb/chart/charts", name+".tgz"), data, 0o644))
	}
	return root
}

// subchart packages a chart whose one file holds n bytes of zeros (a few KiB compressed).
func subchart(t *testing.T, name string, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	add := func(p string, data []byte) {
		must(t, tw.WriteHeader(&tar.Header{Name: name + "/" + p, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}))
		_, err := tw.Write(data)
		must(t, err)
	}
	add("Chart.yaml", []byte("apiVersion: v2\nname: "+name+"\nversion: 0.1.0\n"))
	add("files/zeros.txt", make([]byte, n))
	must(t, tw.Close())
	must(t, gz.Close())
	return buf.Bytes()
}

// TestChartBombsStayInTheirBudget: a chart whose templates loop for ever, one that builds a
// string far past the memory budget, one that renders a huge object, and a chart with many
// small packaged sub-charts that decompress to more than allowed: each fails its render in
// the worker, naming the budget, and this process keeps its memory; a render after them works.
func TestChartBombsStayInTheirBudget(t *testing.T) {
	w := renderWorker(t)
	budget := DefaultBudget()
	budget.Timeout, budget.MaxMemoryBytes, budget.MaxChartArchiveBytes = 5*time.Second, 256<<20, 4<<20
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n  x: |\n    %s\n"
	subs := map[string][]byte{}
	for i := range 8 {
		subs[fmt.Sprintf("sub%d", i)] = subchart(t, fmt.Sprintf("sub%d", i), 1<<20)
	}
	for _, tc := range []struct {
		name, template string
		subcharts      map[string][]byte
		timeout        time.Duration
		want           string
	}{
		{"endless loops", fmt.Sprintf(cm, `{{ range $i := until 100000 }}{{ range $j := until 100000 }}{{ end }}{{ end }}`), nil, 5 * time.Second, "render took longer than 5s"},
		{"memory", fmt.Sprintf(cm, `{{ $s := repeat 4000000 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" }}{{ range $i := until 20 }}{{ $s = printf "%s%s" $s $s }}{{ end }}{{ len $s }}`), nil, time.Minute, "render needed more than 256.0 MiB of memory"},
		{"a huge object", fmt.Sprintf(cm, `{{ repeat 1700000 "x" }}`), nil, time.Minute, "over the budget of 1.5 MiB for one object"},
		{"sub-charts", fmt.Sprintf(cm, "small"), subs, time.Minute, "packaged charts decompress to more than 4.0 MiB in all"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			budget := budget
			budget.Timeout = tc.timeout
			dir := bombRepo(t, tc.template, tc.subcharts)
			fsys := os.DirFS(dir)
			fl, designs, err := schema.Load(context.Background(), fsys, schema.DefaultLoadOptions())
			if err != nil {
				t.Fatal(err)
			}
			c := designs[0].TargetClusters(fl)[0]
			start := time.Now()
			_, err = Render(context.Background(), &designs[0], &c, Options{Revision: "r1", Repo: NewRepo(fsys), Worker: w, Budget: budget})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "design bomb on cluster east") {
				t.Fatalf("err = %v; want one saying %q", err, tc.want)
			}
			if took := time.Since(start); took > tc.timeout+10*time.Second {
				t.Fatalf("the bomb took %s to fail", took)
			}
		})
	}
	if got := renderEach(t, "../examples/platform", Options{Revision: "r1", Worker: w, Budget: budget}); len(got) == 0 {
		t.Fatal("no render after the bombs")
	}
}
