package schema

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// FuzzLoad feeds arbitrary bytes to the loader as a CUE design and as a YAML design, through
// the evaluation worker as `meshcd validate` does. Whatever the input, the answer is a valid
// repo or a *ValidationError whose issues name a file; never a crash, never a wait past the
// time budget.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("../examples/*/designs/*/design.*")
	more, _ := filepath.Glob("../examples/invalid/*/designs/*/design.*")
	for _, p := range append(seeds, more...) {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, strings.HasSuffix(p, ".yaml"))
	}
	f.Add([]byte("design: shop: {namespace: \"shop\", targets: {}}"), false)
	f.Add([]byte("namespace: shop\ntargets: {}\n"), true)
	worker := testWorker(f)
	f.Fuzz(func(t *testing.T, data []byte, asYAML bool) {
		name := "designs/shop/design.cue"
		if asYAML {
			name = "designs/shop/design.yaml"
		}
		fsys := fstest.MapFS{
			"clusters/east.cue": &fstest.MapFile{Data: []byte(clusterEast)},
			name:                &fstest.MapFile{Data: data},
		}
		opts := DefaultLoadOptions()
		opts.Timeout, opts.MaxMemoryBytes, opts.Worker = 2*time.Second, 256<<20, worker
		start := time.Now()
		_, err := Check(t.Context(), fsys, opts)
		if took := time.Since(start); took > opts.Timeout+2*time.Second {
			t.Fatalf("Load took %s, past its %s budget", took, opts.Timeout)
		}
		if err == nil {
			return
		}
		var verr *ValidationError
		if !errors.As(err, &verr) {
			t.Fatalf("Load returned %T %v; bad input must give a *ValidationError", err, err)
		}
		for _, is := range verr.Issues {
			if is.File == "" || is.Message == "" {
				t.Fatalf("issue without a file or message: %+v", is)
			}
		}
	})
}
