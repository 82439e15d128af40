package testenv

import (
	"os"
	"path/filepath"
)

// WriteFiles writes a fleet repo (or any tree) given as path → content under dir, creating
// folders as needed: the generated repos of tests and benchmarks.
func WriteFiles(dir string, files map[string]string) error {
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}
