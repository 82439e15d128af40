// Command render measures meshcd's renderer on generated designs (each with a kustomize base,
// a Helm chart and mesh services) for three clusters, one per mesh: cold, warm (a new
// revision with the same content) and after a one-file change, beside the same manifests
// rendered by `kubectl kustomize` and `helm template` as processes.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshcd/meshcd/render"
	"github.com/meshcd/meshcd/schema"
)

func main() {
	n := flag.Int("n", 200, "designs")
	helm := flag.String("helm", "", "helm binary (same version as meshcd's Helm library)")
	flag.Parse()
	if err := run(*n, *helm); err != nil {
		fmt.Fprintln(os.Stderr, "bench render:", err)
		os.Exit(1)
	}
}

func run(n int, helm string) error {
	dir, err := os.MkdirTemp("", "meshcd-bench-render-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := generate(dir, n); err != nil {
		return err
	}
	ctx := context.Background()
	cache := render.NewCache(100000)
	round := func(name, revision string) (time.Duration, int64, error) {
		root, err := os.OpenRoot(dir)
		if err != nil {
			return 0, 0, err
		}
		defer root.Close()
		fleet, designs, err := schema.Load(ctx, root.FS(), schema.DefaultLoadOptions())
		if err != nil {
			return 0, 0, err
		}
		repo := render.NewRepo(root.FS())
		type job struct {
			d *schema.Design
			c schema.Cluster
		}
		jobs := make(chan job)
		var objects atomic.Int64
		var firstErr error
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := time.Now()
		for range runtime.GOMAXPROCS(0) {
			wg.Go(func() {
				for j := range jobs {
					b, err := render.Render(ctx, j.d, &j.c, render.Options{Revision: revision, Repo: repo, Cache: cache})
					if err != nil {
						mu.Lock()
						firstErr = err
						mu.Unlock()
						continue
					}
					objects.Add(int64(len(b.Objects)))
				}
			})
		}
		for i := range designs {
			for _, c := range designs[i].TargetClusters(fleet) {
				jobs <- job{&designs[i], c}
			}
		}
		close(jobs)
		wg.Wait()
		return time.Since(start), objects.Load(), firstErr
	}

	before := cache.Stats()
	cold, objs, err := round("cold", "r1")
	if err != nil {
		return err
	}
	s := cache.Stats()
	fmt.Printf("render %d designs x 3 clusters, cold:             %6.0f objects/s  (%d objects in %s, %d rendered)\n", n, float64(objs)/cold.Seconds(), objs, cold.Round(time.Millisecond), s.Misses-before.Misses)
	before = s
	warm, objs, err := round("warm", "r2")
	if err != nil {
		return err
	}
	s = cache.Stats()
	fmt.Printf("render %d designs x 3 clusters, warm (new rev):   %6.0f objects/s  (%s, %d cache hits, %d rendered)\n", n, float64(objs)/warm.Seconds(), warm.Round(time.Millisecond), s.Hits-before.Hits, s.Misses-before.Misses)
	before = s
	if err := os.WriteFile(filepath.Join(dir, "designs/app-7/base/config.yaml"), []byte(configMap(7, "changed")), 0o644); err != nil {
		return err
	}
	changed, objs, err := round("changed", "r3")
	if err != nil {
		return err
	}
	s = cache.Stats()
	fmt.Printf("render %d designs x 3 clusters, one file changed: %6.0f objects/s  (%s, %d cache hits, %d designs x clusters re-rendered)\n", n, float64(objs)/changed.Seconds(), changed.Round(time.Millisecond), s.Hits-before.Hits, s.Misses-before.Misses)

	if helm == "" {
		fmt.Println("helm CLI not given: no peer ratio")
		return nil
	}
	// The peer: the same manifests with the CLIs users know, once per design (one cluster).
	peerStart := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var peerErr atomic.Value
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			d := filepath.Join(dir, "designs", fmt.Sprintf("app-%d", i))
			for _, args := range [][]string{{"kubectl", "kustomize", filepath.Join(d, "base")}, {helm, "template", fmt.Sprintf("app-%d", i), filepath.Join(d, "chart"), "--namespace", fmt.Sprintf("app-%d", i)}} {
				if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
					peerErr.Store(fmt.Errorf("%v: %v: %s", args, err, out))
				}
			}
		})
	}
	wg.Wait()
	if err, _ := peerErr.Load().(error); err != nil {
		return err
	}
	peer := time.Since(peerStart)
	meshcdOne := cold / 3
	fmt.Printf("manifests of %d designs for one cluster: meshcd cold %s, kubectl kustomize + helm template processes %s: meshcd %.1fx faster\n",
		n, meshcdOne.Round(time.Millisecond), peer.Round(time.Millisecond), peer.Seconds()/meshcdOne.Seconds())
	return nil
}

func configMap(i int, value string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-%d-config\ndata:\n  MODE: %q\n", i, value)
}

func generate(dir string, n int) error {
	write := func(p, data string) error {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		return os.WriteFile(full, []byte(data), 0o644)
	}
	for name, mesh := range map[string]string{"mesh-istio": "istio", "mesh-linkerd": "linkerd", "mesh-gw": "gateway-api"} {
		if err := write("clusters/"+name+".cue", fmt.Sprintf("cluster: %q: {labels: env: \"prod\", mesh: %q, kubernetesVersion: \"1.37\"}\n", name, mesh)); err != nil {
			return err
		}
	}
	for i := range n {
		d := fmt.Sprintf("designs/app-%d/", i)
		files := map[string]string{
			d + "design.cue": fmt.Sprintf(`design: "app-%[1]d": {
	namespace: "app-%[1]d"
	targets: matchLabels: env: "prod"
	manifests: [{kustomize: "./base"}, {helm: {chart: "./chart", values: replicas: 2}}]
	services: api: {
		port: 8080
		versions: {stable: labels: version: "v1", canary: labels: version: "v2"}
		routes: [
			{match: headers: "x-canary": "true", to: canary: 100},
			{to: {stable: 90, canary: 10}, timeout: "3s"},
		]
		mtls: "strict"
	}
}
`, i),
			d + "base/kustomization.yaml": "resources: [config.yaml, account.yaml]\nlabels: [{pairs: {team: apps}, includeSelectors: true}]\n",
			d + "base/config.yaml":        configMap(i, "normal"),
			d + "base/account.yaml":       fmt.Sprintf("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app-%d\n", i),
			d + "chart/Chart.yaml":        fmt.Sprintf("apiVersion: v2\nname: app-%d\nversion: 0.1.0\n", i),
			d + "chart/values.yaml":       "replicas: 1\nimage: ghcr.io/example/api:1.0.0\n",
			d + "chart/templates/deployment.yaml": `{{- range $v := list "v1" "v2" }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api-{{ $v }}
spec:
  replicas: {{ $.Values.replicas }}
  selector: {matchLabels: {app: api, version: {{ $v }}}}
  template:
    metadata: {labels: {app: api, version: {{ $v }}}}
    spec:
      containers: [{name: api, image: {{ $.Values.image | quote }}}]
{{- end }}
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  selector: {app: api}
  ports: [{name: http, port: 8080}]
`,
		}
		for p, data := range files {
			if err := write(p, data); err != nil {
				return err
			}
		}
	}
	return nil
}
