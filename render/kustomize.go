package render

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// maxManifestFileBytes refuses any single file a kustomization or chart could read above this.
const maxManifestFileBytes = 8 << 20

// repoFiles is the fleet repo as kustomize sees it: an in-memory copy holding only the repo's
// regular files, so that `..` above the root, absolute paths and links lead nowhere.
type repoFiles struct {
	fs filesys.FileSystem
	// refused are files left out of the copy, with why: named in errors that reach for them.
	refused map[string]string
}

func copyRepo(files fs.FS) (*repoFiles, error) {
	out := &repoFiles{fs: filesys.MakeFsInMemory(), refused: map[string]string{}}
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p == ".git" || p == "status" {
				return fs.SkipDir
			}
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			out.refused[p] = "is a symbolic link; meshcd reads only regular files inside the repo"
			return nil
		}
		if !d.Type().IsRegular() {
			out.refused[p] = "is not a regular file"
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Size() > maxManifestFileBytes {
			out.refused[p] = fmt.Sprintf("is %.1f MiB, over the %d MiB limit for a manifest file", float64(info.Size())/(1<<20), maxManifestFileBytes>>20)
			return nil
		}
		data, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		return out.fs.WriteFile("/"+p, data)
	})
	return out, err
}

// explain names a refused file when kustomize's error is about it.
func (r *repoFiles) explain(err error) error {
	for p, why := range r.refused {
		if strings.Contains(err.Error(), p) {
			return fmt.Errorf("%s %s", p, why)
		}
	}
	return err
}

// renderKustomize builds the kustomization in dir (relative to the repo root) with krusty:
// builtin transformers only (no exec or container functions, no Helm inflation), files only
// from the kustomization's own folder tree, and no remote bases or URLs.
func renderKustomize(files *repoFiles, dir string) ([]*unstructured.Unstructured, error) {
	if err := refuseRemote(files, dir, map[string]bool{}); err != nil {
		return nil, err
	}
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = types.LoadRestrictionsRootOnly
	opts.PluginConfig = types.DisabledPluginConfig()
	resMap, err := krusty.MakeKustomizer(opts).Run(files.fs, "/"+dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize %s: %w", dir, files.explain(err))
	}
	var out []*unstructured.Unstructured
	for _, res := range resMap.Resources() {
		// Through JSON, so numbers are int64 as everywhere else in client-go.
		data, err := res.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("kustomize %s: %s: %w", dir, res.CurId(), err)
		}
		o := &unstructured.Unstructured{}
		if err := o.UnmarshalJSON(data); err != nil {
			return nil, fmt.Errorf("kustomize %s: %s: %w", dir, res.CurId(), err)
		}
		out = append(out, o)
	}
	return out, nil
}

// kustomizationRefs are the fields of a kustomization that name other kustomizations or files.
type kustomizationRefs struct {
	Resources  []string `json:"resources"`
	Bases      []string `json:"bases"`
	Components []string `json:"components"`
}

// refuseRemote walks the kustomizations reachable from dir and refuses any remote base or
// URL before kustomize would fetch it (it clones with the git binary and downloads URLs).
func refuseRemote(files *repoFiles, dir string, seen map[string]bool) error {
	if seen[dir] {
		return nil
	}
	seen[dir] = true
	var kfile string
	for _, name := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		if files.fs.Exists("/" + path.Join(dir, name)) {
			kfile = path.Join(dir, name)
			break
		}
	}
	if kfile == "" {
		if why, ok := files.refused[path.Join(dir, "kustomization.yaml")]; ok {
			return fmt.Errorf("%s %s", path.Join(dir, "kustomization.yaml"), why)
		}
		return fmt.Errorf("kustomize %s: no kustomization.yaml in that folder", dir)
	}
	data, err := files.fs.ReadFile("/" + kfile)
	if err != nil {
		return err
	}
	var k kustomizationRefs
	if err := yaml.Unmarshal(data, &k); err != nil {
		return fmt.Errorf("%s: not a valid kustomization: %w", kfile, errors.Unwrap(err))
	}
	for _, ref := range append(append(k.Resources, k.Bases...), k.Components...) {
		local := path.Clean(path.Join(dir, ref))
		if looksRemote(ref) && !files.fs.Exists("/"+local) {
			return fmt.Errorf("%s: %q is a remote base or URL; meshcd builds only from files in the repo", kfile, ref)
		}
		if files.fs.IsDir("/" + local) {
			if err := refuseRemote(files, local, seen); err != nil {
				return err
			}
		}
	}
	return nil
}

func looksRemote(ref string) bool {
	if strings.Contains(ref, "://") || strings.HasPrefix(ref, "git@") || strings.HasPrefix(ref, "git::") ||
		strings.Contains(ref, "?ref=") || strings.Contains(ref, "?version=") {
		return true
	}
	// github.com/org/repo//path: a host name, then a path.
	first, rest, hasPath := strings.Cut(ref, "/")
	return hasPath && rest != "" && strings.Contains(first, ".") && first != "." && first != ".."
}
