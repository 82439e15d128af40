package render

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/meshcd/meshcd/schema"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// renderManifests renders the design's manifests in order, then applies the cluster's
// override replicas and patches to them.
func renderManifests(in *compileInput, source *Repo, out *output) error {
	if len(in.design.Manifests) == 0 {
		return nil
	}
	if source == nil {
		return in.fail("manifests", "rendering manifests needs the repo (render.Options.Repo)")
	}
	repo, err := source.repoFiles()
	if err != nil {
		return fmt.Errorf("reading the repo for design %s: %w", in.design.Name, err)
	}
	var objs []*unstructured.Unstructured
	for i, m := range in.design.Manifests {
		where := "manifests[" + strconv.Itoa(i) + "]"
		var got []*unstructured.Unstructured
		var err error
		switch {
		case m.Kustomize != "":
			got, err = renderKustomize(repo, path.Join(in.design.Dir, m.Kustomize))
		case m.YAML != "":
			got, err = renderYAMLDir(repo, path.Join(in.design.Dir, m.YAML))
		case m.Helm != nil:
			var hooks []string
			got, hooks, err = renderHelmManifest(in, repo, m.Helm)
			for _, h := range hooks {
				out.warn("%s: Helm hook %s is not applied: meshcd runs no Helm hooks", where, h)
			}
		}
		if err != nil {
			return in.fail(where, "%v", err)
		}
		if m.Helm == nil { // a chart's objects are checked with their template's name
			for _, o := range got {
				if problems := checkMergeKeys(o); len(problems) > 0 {
					return in.fail(where, "%s %s: %s", o.GetKind(), o.GetName(), joinProblems(problems))
				}
			}
		}
		objs = append(objs, got...)
	}
	for _, o := range objs {
		if o.GetNamespace() == "" && !clusterScoped(o) {
			o.SetNamespace(in.design.Namespace)
		}
	}
	objs, err = applyOverridePatches(in, objs)
	if err != nil {
		return err
	}
	out.add(objs...)
	return nil
}

// renderYAMLDir reads every .yaml, .yml and .json file under dir, in name order. A file it
// will not read (a symbolic link, one over the size limit, another kind of file) fails the
// render, naming it: skipping it would prune the objects it holds. Only notes for people
// (Markdown, .gitkeep, .gitignore) are left out.
func renderYAMLDir(repo *repoFiles, dir string) ([]*unstructured.Unstructured, error) {
	var problems []string
	for p, why := range repo.refused {
		if strings.HasPrefix(p, dir+"/") {
			problems = append(problems, p+" "+why)
		}
	}
	if !repo.fs.IsDir("/"+dir) && len(problems) == 0 {
		return nil, fmt.Errorf("yaml %s: no such folder in the repo", dir)
	}
	var names []string
	walk := repo.fs.Walk
	if !repo.fs.IsDir("/" + dir) {
		// Only refused files there (the folder itself was never copied): they are the problem.
		walk = func(string, filepath.WalkFunc) error { return nil }
	}
	err := walk("/"+dir, func(p string, info fs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.IsDir() {
			return nil
		}
		switch ext := path.Ext(p); {
		case ext == ".yaml" || ext == ".yml" || ext == ".json":
			names = append(names, p)
		case ext == ".md" || path.Base(p) == ".gitkeep" || path.Base(p) == ".gitignore":
		default:
			problems = append(problems, strings.TrimPrefix(p, "/")+" is not YAML or JSON (.yaml, .yml, .json); move it out of the folder or rename it")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, fmt.Errorf("yaml %s: %s; nothing of the folder is applied or pruned", dir, strings.Join(problems, "; "))
	}
	sort.Strings(names)
	var out []*unstructured.Unstructured
	for _, n := range names {
		data, err := repo.fs.ReadFile(n)
		if err != nil {
			return nil, err
		}
		objs, err := DecodeObjects(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", strings.TrimPrefix(n, "/"), err)
		}
		out = append(out, objs...)
	}
	return out, nil
}

// DecodeObjects reads a stream of YAML or JSON documents as Kubernetes objects; List kinds
// are flattened.
func DecodeObjects(data []byte) ([]*unstructured.Unstructured, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []*unstructured.Unstructured
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		data, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d is not valid YAML", n)
		}
		if bytes.Equal(bytes.TrimSpace(data), []byte("null")) || bytes.Equal(bytes.TrimSpace(data), []byte("{}")) {
			continue
		}
		o := &unstructured.Unstructured{}
		if err := o.UnmarshalJSON(data); err != nil {
			return nil, fmt.Errorf("document %d is not a Kubernetes object: %v", n, err)
		}
		if o.IsList() {
			list, err := o.ToList()
			if err != nil {
				return nil, fmt.Errorf("document %d: %w", n, err)
			}
			for i := range list.Items {
				out = append(out, &list.Items[i])
			}
			continue
		}
		out = append(out, o)
	}
}

// clusterScoped lists the built-in kinds that have no namespace; everything else rendered
// without one goes into the design's namespace.
func clusterScoped(o *unstructured.Unstructured) bool {
	gk := o.GroupVersionKind().GroupKind()
	switch gk.Group + "/" + gk.Kind {
	case "/Namespace", "/PersistentVolume", "/Node",
		"rbac.authorization.k8s.io/ClusterRole", "rbac.authorization.k8s.io/ClusterRoleBinding",
		"apiextensions.k8s.io/CustomResourceDefinition", "scheduling.k8s.io/PriorityClass",
		"storage.k8s.io/StorageClass", "admissionregistration.k8s.io/ValidatingWebhookConfiguration",
		"admissionregistration.k8s.io/MutatingWebhookConfiguration", "gateway.networking.k8s.io/GatewayClass",
		"networking.k8s.io/IngressClass":
		return true
	}
	return false
}

// applyOverridePatches applies the cluster's override replicas and patches to the rendered
// manifests with kustomize, as an overlay over them.
func applyOverridePatches(in *compileInput, objs []*unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
	type patch struct {
		Target map[string]string `json:"target"`
		Patch  string            `json:"patch"`
	}
	var patches []patch
	for _, o := range in.design.OverridesFor(*in.cluster) {
		if o.Replicas != nil {
			for _, kind := range []string{"Deployment", "StatefulSet"} {
				patches = append(patches, patch{Target: map[string]string{"kind": kind},
					Patch: fmt.Sprintf(`[{"op": "add", "path": "/spec/replicas", "value": %d}]`, *o.Replicas)})
			}
		}
		for _, p := range o.Patches {
			var fragment map[string]any
			if err := yaml.Unmarshal([]byte(p.Patch), &fragment); err != nil || fragment == nil || fragment["kind"] != nil {
				// A JSON patch (a list) or a complete strategic-merge patch: as written.
				t := map[string]string{"kind": p.Target.Kind}
				if p.Target.Name != "" {
					t["name"] = p.Target.Name
				}
				patches = append(patches, patch{Target: t, Patch: p.Patch})
				continue
			}
			// A bare strategic-merge fragment: completed with each matching object's identity,
			// which kustomize needs to merge it.
			for _, obj := range objs {
				if obj.GetKind() != p.Target.Kind || (p.Target.Name != "" && obj.GetName() != p.Target.Name) {
					continue
				}
				full := map[string]any{}
				for k, v := range fragment {
					full[k] = v
				}
				full["apiVersion"], full["kind"] = obj.GetAPIVersion(), obj.GetKind()
				full["metadata"] = map[string]any{"name": obj.GetName(), "namespace": obj.GetNamespace()}
				data, err := yaml.Marshal(full)
				if err != nil {
					return nil, err
				}
				patches = append(patches, patch{Target: map[string]string{"kind": obj.GetKind(), "name": obj.GetName()}, Patch: string(data)})
			}
		}
	}
	if len(patches) == 0 || len(objs) == 0 {
		return objs, nil
	}
	var buf bytes.Buffer
	for _, o := range objs {
		data, err := yaml.Marshal(o.Object)
		if err != nil {
			return nil, err
		}
		buf.WriteString("---\n")
		buf.Write(data)
	}
	// The overlay gets a file system of its own: the repo copy is shared by concurrent renders.
	const dir = "overlay"
	k, err := yaml.Marshal(map[string]any{"resources": []string{"rendered.yaml"}, "patches": patches})
	if err != nil {
		return nil, err
	}
	overlay := &repoFiles{fs: filesys.MakeFsInMemory(), refused: map[string]string{}}
	if err := overlay.fs.MkdirAll("/" + dir); err != nil {
		return nil, err
	}
	if err := overlay.fs.WriteFile("/"+dir+"/rendered.yaml", buf.Bytes()); err != nil {
		return nil, err
	}
	if err := overlay.fs.WriteFile("/"+dir+"/kustomization.yaml", k); err != nil {
		return nil, err
	}
	patched, err := renderKustomize(overlay, dir)
	if err != nil {
		return nil, in.fail("overrides", "applying patches for cluster %s: %v", in.cluster.Name, strings.ReplaceAll(err.Error(), dir+"/", ""))
	}
	return patched, nil
}

func renderHelmManifest(in *compileInput, repo *repoFiles, h *schema.Helm) ([]*unstructured.Unstructured, []string, error) {
	var overrideValues []map[string]any
	for _, o := range in.design.OverridesFor(*in.cluster) {
		if o.Values != nil {
			overrideValues = append(overrideValues, o.Values)
		}
	}
	vals, err := helmValues(repo, in.design.Dir, h, overrideValues)
	if err != nil {
		return nil, nil, err
	}
	name := h.ReleaseName
	if name == "" {
		name = in.design.Name
	}
	return renderHelm(in.ctx, repo, path.Join(in.design.Dir, h.Chart), helmRelease{
		name: name, namespace: in.design.Namespace, kubeVersion: in.cluster.KubernetesVersion,
		mesh: in.cluster.Mesh, values: vals,
	})
}
