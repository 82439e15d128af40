package render

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/meshcd/meshcd/schema"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/ignore"
	"helm.sh/helm/v3/pkg/releaseutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// maxChartBytes refuses a chart folder larger than this; packaged sub-charts are held to
// Helm's own decompression limits.
const maxChartBytes = 20 << 20

// helmRelease is what renderHelm needs to know about where the chart goes.
type helmRelease struct {
	name, namespace string
	kubeVersion     string
	mesh            schema.Mesh
	// values are the design's inline values merged over its value files, with the cluster's
	// override values last.
	values map[string]any
}

// renderHelm renders a chart from the repo as `helm template --include-crds` would, in client
// mode: no cluster is contacted. Hooks are not part of the result (meshcd runs no Helm hook
// lifecycle); their names come back so the caller can say so.
func renderHelm(ctx context.Context, repo *repoFiles, chartDir string, rel helmRelease) ([]*unstructured.Unstructured, []string, error) {
	files, err := chartFiles(repo, chartDir)
	if err != nil {
		return nil, nil, err
	}
	chrt, err := loader.LoadFiles(files)
	if err != nil {
		return nil, nil, fmt.Errorf("helm chart %s: %w", chartDir, err)
	}
	if err := action.CheckDependencies(chrt, chrt.Metadata.Dependencies); err != nil {
		return nil, nil, fmt.Errorf("helm chart %s: %w (vendor them with helm dependency build and commit charts/)", chartDir, err)
	}
	if merged, err := chartutil.CoalesceValues(chrt, rel.values); err != nil {
		return nil, nil, fmt.Errorf("helm chart %s: %w", chartDir, err)
	} else if err := checkChartSchema(chrt, merged); err != nil {
		return nil, nil, fmt.Errorf("helm chart %s: %w", chartDir, err)
	}
	install := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	install.DryRun, install.ClientOnly, install.Replace, install.IncludeCRDs = true, true, true, true
	// checkChartSchema did Helm's schema check, without following $refs out of the chart.
	install.SkipSchemaValidation = true
	install.ReleaseName, install.Namespace = rel.name, rel.namespace
	v := rel.kubeVersion
	if v == "" {
		v = DefaultKubeVersion()
	}
	if !strings.HasPrefix(v, "v") {
		v = "v" + v
	}
	kv, err := chartutil.ParseKubeVersion(v)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster kubernetesVersion %q: %w", rel.kubeVersion, err)
	}
	install.KubeVersion = kv
	install.APIVersions = meshAPIVersions(rel.mesh)
	release, err := install.RunWithContext(ctx, chrt, rel.values)
	if err != nil {
		return nil, nil, fmt.Errorf("helm chart %s: %w", chartDir, err)
	}
	split := releaseutil.SplitManifests(release.Manifest)
	keys := make([]string, 0, len(split))
	for k := range split {
		keys = append(keys, k)
	}
	sort.Sort(releaseutil.BySplitManifestsOrder(keys))
	var out []*unstructured.Unstructured
	for _, k := range keys {
		objs, err := DecodeObjects([]byte(split[k]))
		if err != nil {
			return nil, nil, fmt.Errorf("helm chart %s rendered a manifest that is not valid: %w", chartDir, err)
		}
		for _, o := range objs {
			if problems := checkMergeKeys(o); len(problems) > 0 {
				hint := "two values of the chart set the same entry: keep one of them"
				if merged, err := chartutil.CoalesceValues(chrt, rel.values); err == nil {
					if named := valuesNaming(merged, problems); len(named) > 0 {
						hint = "values that set it: " + strings.Join(named, ", ") + "; keep one of them"
					}
				}
				return nil, nil, fmt.Errorf("helm chart %s, template %s: %s %s: %s (helm install only warns; %s)",
					chartDir, templateSource(split[k]), o.GetKind(), o.GetName(), joinProblems(problems), hint)
			}
		}
		out = append(out, objs...)
	}
	var hooks []string
	for _, h := range release.Hooks {
		hooks = append(hooks, fmt.Sprintf("%s %s (%s)", h.Kind, h.Name, joinEvents(h.Events)))
	}
	sort.Strings(hooks)
	return out, hooks, nil
}

// templateSource is the chart template a manifest came from, from the "# Source:" line Helm
// writes above it.
func templateSource(manifest string) string {
	for line := range strings.Lines(manifest) {
		if src, ok := strings.CutPrefix(strings.TrimSpace(line), "# Source: "); ok {
			return src
		}
	}
	return "(unknown)"
}

// chartFiles reads a chart folder from the repo copy, honouring its .helmignore, and refuses a
// chart larger than maxChartBytes.
func chartFiles(repo *repoFiles, chartDir string) ([]*loader.BufferedFile, error) {
	root := "/" + chartDir
	if !repo.fs.IsDir(root) {
		if why, ok := repo.refused[chartDir]; ok {
			return nil, fmt.Errorf("helm chart %s %s", chartDir, why)
		}
		return nil, fmt.Errorf("helm chart %s: no such folder in the repo (packaged charts go under a chart's charts/ folder)", chartDir)
	}
	rules := ignore.Empty()
	if data, err := repo.fs.ReadFile(path.Join(root, ignore.HelmIgnore)); err == nil {
		if rules, err = ignore.Parse(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("helm chart %s: .helmignore: %w", chartDir, err)
		}
	}
	rules.AddDefaults()
	for p, why := range repo.refused {
		if strings.HasPrefix(p, chartDir+"/") {
			return nil, fmt.Errorf("helm chart %s: %s %s", chartDir, p, why)
		}
	}
	var files []*loader.BufferedFile
	var total int64
	err := repo.fs.Walk(root, func(p string, info fs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
		if rel == "" {
			return nil
		}
		if rules.Ignore(rel, info) {
			if info.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if info.IsDir() {
			return nil
		}
		total += info.Size()
		if total > maxChartBytes {
			return fmt.Errorf("helm chart %s is larger than %d MiB", chartDir, maxChartBytes>>20)
		}
		data, err := repo.fs.ReadFile(p)
		if err != nil {
			return err
		}
		files = append(files, &loader.BufferedFile{Name: rel, Data: data})
		return nil
	})
	return files, err
}

// meshAPIVersions are the mesh APIs a chart may look for in .Capabilities.APIVersions on a
// cluster of this mesh.
func meshAPIVersions(mesh schema.Mesh) chartutil.VersionSet {
	gw := []string{"gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1/HTTPRoute", "gateway.networking.k8s.io/v1/GRPCRoute"}
	switch mesh {
	case schema.MeshIstio:
		return append(chartutil.VersionSet{"networking.istio.io/v1", "security.istio.io/v1", "networking.istio.io/v1/VirtualService", "networking.istio.io/v1/DestinationRule"}, gw...)
	case schema.MeshLinkerd:
		return append(chartutil.VersionSet{"policy.linkerd.io/v1beta3", "policy.linkerd.io/v1alpha1", "linkerd.io/v1alpha2"}, gw...)
	}
	return gw
}

func joinEvents[T fmt.Stringer](events []T) string {
	s := make([]string, len(events))
	for i, e := range events {
		s[i] = e.String()
	}
	return strings.Join(s, ", ")
}

// helmValues merges a release's values: value files in order, the inline values, then the
// cluster's override values, each later one winning key by key.
func helmValues(repo *repoFiles, designDir string, h *schema.Helm, overrides []map[string]any) (map[string]any, error) {
	vals := map[string]any{}
	for _, f := range h.ValueFiles {
		p := path.Join(designDir, f)
		if why, ok := repo.refused[p]; ok {
			return nil, fmt.Errorf("value file %s %s", p, why)
		}
		data, err := repo.fs.ReadFile("/" + p)
		if err != nil {
			return nil, fmt.Errorf("value file %s: not found in the repo", p)
		}
		var m map[string]any
		if err := yaml.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("value file %s: not valid YAML", p)
		}
		mergeValues(vals, m)
	}
	mergeValues(vals, h.Values)
	for _, o := range overrides {
		mergeValues(vals, o)
	}
	return vals, nil
}

func mergeValues(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergeValues(dm, sm)
				continue
			}
			cp := map[string]any{}
			mergeValues(cp, sm)
			dst[k] = cp
			continue
		}
		dst[k] = v
	}
}

// DefaultKubeVersion is the Kubernetes version charts see on a cluster that does not say its
// own: the one meshcd's client-go speaks (v0.37.x is Kubernetes 1.37.x). Helm's own default is
// set only by Helm's release build and is v1.20.0 otherwise.
func DefaultKubeVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "k8s.io/client-go" && strings.HasPrefix(m.Version, "v0.") {
				if rest, ok := strings.CutPrefix(m.Version, "v0."); ok {
					return "v1." + strings.SplitN(rest, "-", 2)[0]
				}
			}
		}
	}
	return "v1.37.0"
}
