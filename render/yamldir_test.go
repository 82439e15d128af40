package render

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestYAMLFolderDropsNoFile: a file of a {yaml:} folder that meshcd will not read fails the
// render, naming the file, instead of being skipped (skipping it would prune its objects);
// notes for people are left out.
func TestYAMLFolderDropsNoFile(t *testing.T) {
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s}\n"
	for _, tc := range []struct {
		name    string
		add     func(t *testing.T, dir string)
		wantErr string
	}{
		{"only manifests and notes", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "README.md"), "# notes")
			write(t, filepath.Join(dir, ".gitkeep"), "")
			write(t, filepath.Join(dir, "b.json"), `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}`)
		}, ""},
		{"a symlink", func(t *testing.T, dir string) {
			must(t, os.Symlink("/etc/hostname", filepath.Join(dir, "host.yaml")))
		}, "raw/host.yaml is a symbolic link"},
		{"nothing but a symlink", func(t *testing.T, dir string) {
			must(t, os.Remove(filepath.Join(dir, "a.yaml")))
			must(t, os.Symlink("/etc/hostname", filepath.Join(dir, "a.yaml")))
		}, "raw/a.yaml is a symbolic link"},
		{"an oversized file", func(t *testing.T, dir string) {
			big := strings.Repeat("# padding\n", (9<<20)/10)
			write(t, filepath.Join(dir, "big.yaml"), big)
		}, "raw/big.yaml is 9.0 MiB, over the 8 MiB limit"},
		{"a file of another kind", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "config.txt"), "a: b")
		}, "raw/config.txt is not YAML or JSON"},
		{"a named pipe", func(t *testing.T, dir string) {
			must(t, syscall.Mkfifo(filepath.Join(dir, "pipe.yaml"), 0o644))
		}, "raw/pipe.yaml is not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "raw")
			must(t, os.MkdirAll(dir, 0o755))
			write(t, filepath.Join(dir, "a.yaml"), strings.ReplaceAll(cm, "%s", "a"))
			tc.add(t, dir)
			objs, err := renderYAMLDir(openRepo(t, root), "raw")
			if tc.wantErr == "" {
				if err != nil || len(objs) != 2 {
					t.Fatalf("%d objects, %v; want a and b", len(objs), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "nothing of the folder is applied or pruned") {
				t.Fatalf("got %d objects, %v; want an error saying %q", len(objs), err, tc.wantErr)
			}
		})
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	must(t, os.WriteFile(path, []byte(data), 0o644))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
