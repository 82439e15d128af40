// Command validate measures `meshcd validate` on N generated designs against `cue vet` with
// meshcd's schema on the same files, both run as processes, and prints designs/s, peak memory
// and the ratio. cue vet checks only the CUE schema; `meshcd validate --schema-only` also runs
// the cross-field rules, so those two are compared. Plain `meshcd validate` also renders every
// design for every cluster it targets; it is printed beside them, without a peer.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	n := flag.Int("n", 500, "designs to generate")
	meshcd := flag.String("meshcd", "bin/meshcd", "meshcd binary")
	cue := flag.String("cue", "", "cue binary (same version as meshcd's cuelang.org/go)")
	schema := flag.String("schema", "schema/cue/schema.cue", "meshcd's CUE schema")
	runs := flag.Int("runs", 3, "runs of each tool; the fastest counts")
	flag.Parse()
	if err := run(*n, *meshcd, *cue, *schema, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "bench validate:", err)
		os.Exit(1)
	}
}

func run(n int, meshcd, cue, schema string, runs int) error {
	dir, err := os.MkdirTemp("", "meshcd-bench-validate-")
	if err != nil {
		return err
	}
	if os.Getenv("KEEP") == "" {
		defer os.RemoveAll(dir)
	} else {
		fmt.Println("kept", dir)
	}
	files, err := generate(dir, n, schema)
	if err != nil {
		return err
	}
	m, err := best(runs, dir, meshcd, "validate", "--schema-only", dir)
	if err != nil {
		return fmt.Errorf("meshcd validate --schema-only: %w", err)
	}
	fmt.Printf("validate %d designs: meshcd validate --schema-only  %7.0f designs/s  %6.1f MiB peak  (%s)\n", n, float64(n)/m.wall.Seconds(), m.rssMiB, m.wall.Round(time.Millisecond))
	full, err := best(runs, dir, meshcd, "validate", dir)
	if err != nil {
		return fmt.Errorf("meshcd validate: %w", err)
	}
	fmt.Printf("validate %d designs: meshcd validate (and render)  %7.0f designs/s  %6.1f MiB peak  (%s)\n", n, float64(n)/full.wall.Seconds(), full.rssMiB, full.wall.Round(time.Millisecond))
	if cue == "" {
		fmt.Println("cue CLI not given: no ratio")
		return nil
	}
	c, err := best(runs, dir, cue, append([]string{"vet", "-c"}, files...)...)
	if err != nil {
		return fmt.Errorf("cue vet: %w", err)
	}
	fmt.Printf("validate %d designs: cue vet (schema)                %7.0f designs/s  %6.1f MiB peak  (%s)\n", n, float64(n)/c.wall.Seconds(), c.rssMiB, c.wall.Round(time.Millisecond))
	fmt.Printf("validate %d designs: meshcd --schema-only / cue vet = %.2fx speed, %.2fx memory\n", n, c.wall.Seconds()/m.wall.Seconds(), m.rssMiB/c.rssMiB)
	return nil
}

type measure struct {
	wall   time.Duration
	rssMiB float64
}

func best(runs int, dir, bin string, args ...string) (measure, error) {
	var b measure
	for i := range runs {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		start := time.Now()
		out, err := cmd.CombinedOutput()
		wall := time.Since(start)
		if err != nil {
			return b, fmt.Errorf("%w: %s", err, tail(out))
		}
		rss := float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) / 1024
		if i == 0 || wall < b.wall {
			b.wall = wall
		}
		b.rssMiB = max(b.rssMiB, rss)
	}
	return b, nil
}

func tail(b []byte) string {
	if len(b) > 400 {
		b = b[len(b)-400:]
	}
	return string(b)
}

// generate writes n designs like examples/shop's, each with its own name and weights, plus
// four clusters, and the files cue vet needs to check them against the same schema.
func generate(dir string, n int, schema string) ([]string, error) {
	var files []string
	write := func(rel, data string) error {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		files = append(files, rel)
		return os.WriteFile(p, []byte(data), 0o644)
	}
	meshes := []string{"istio", "linkerd", "gateway-api", "istio"}
	for i, mesh := range meshes {
		if err := write(fmt.Sprintf("clusters/c%d.cue", i), fmt.Sprintf("package meshcd\n\ncluster: c%d: {labels: {env: \"prod\", idx: \"%d\"}, mesh: %q}\n", i, i, mesh)); err != nil {
			return nil, err
		}
	}
	for i := range n {
		w := i % 50
		d := fmt.Sprintf(`package meshcd

design: "app-%[1]d": {
	namespace: "app-%[1]d"
	targets: matchLabels: env: "prod"
	services: api: {
		port: 8080
		versions: {stable: labels: version: "v1", canary: labels: version: "v2"}
		routes: [
			{match: headers: "x-canary": "true", to: canary: 100},
			{match: path: prefix: "/v2/", to: {stable: %[2]d, canary: %[3]d}, timeout: "3s", retries: {attempts: 2, perTryTimeout: "1s"}},
			{to: {stable: %[3]d, canary: %[2]d}},
		]
		timeout: "5s"
		mtls: "strict"
		outlierDetection: {consecutive5xxErrors: 3}
	}
	gates: latency: {
		url: "http://api.app-%[1]d:8080/"
		load: {qps: 100, duration: "10s"}
		thresholds: {p50: "20ms", p99: "200ms", errorRate: 0.01}
		schedule: "@every 6h"
		triggers: ["change", "cron"]
	}
	overrides: [{cluster: "c1", services: api: weights: {stable: 100, canary: 0}}]
}
`, i, 100-w, w)
		if err := write(fmt.Sprintf("designs/app-%d/design.cue", i), d); err != nil {
			return nil, err
		}
	}
	src, err := os.ReadFile(schema)
	if err != nil {
		return nil, err
	}
	if err := write("schema.cue", string(src)); err != nil {
		return nil, err
	}
	// cue vet sees every file as one package; this applies the schema to what they define.
	if err := write("repo.cue", "package meshcd\n\ncluster: [string]: #Cluster\ndesign: [string]: #Design\n"); err != nil {
		return nil, err
	}
	return files, nil
}
