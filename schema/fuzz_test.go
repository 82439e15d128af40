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

// FuzzLoad feeds arbitrary bytes to the loader as a CUE design and as a YAML design. Whatever
// the input, Load returns a design or a *ValidationError whose issues name a file; it never
// panics, and it never waits past its time budget.
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
		opts.Timeout = 2 * time.Second
		start := time.Now()
		_, _, err := Load(t.Context(), fsys, opts)
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
