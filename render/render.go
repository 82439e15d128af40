// Package render turns a design and a target cluster into the exact, ordered list of
// Kubernetes objects to apply there: the mesh compiler (istio, linkerd, gateway-api) chosen by
// the cluster's mesh, per-cluster overrides, meshcd's labels and annotations, and a digest.
// It never talks to a cluster: the same inputs always give the same bytes.
package render

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"

	"github.com/meshcd/meshcd/schema"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Labels and annotations meshcd puts on every object it renders, so the reconciler and drift
// detection find what is theirs. The revision is deliberately not among them: it lives in the
// bundle, the in-cluster inventory and the status files, so a commit that changes nothing a
// design renders rewrites no object.
const (
	LabelManagedBy       = "app.kubernetes.io/managed-by"
	ManagedByMeshcd      = "meshcd"
	LabelDesign          = "meshcd.io/design"
	LabelCluster         = "meshcd.io/cluster"
	AnnotationDigest     = "meshcd.io/digest"
	AnnotationSourcePath = "meshcd.io/source"
)

// Options are the inputs of a render that are not in the design or the cluster.
type Options struct {
	// Revision is the Git commit the design was read at; the bundle carries it.
	Revision string
	// Repo is the fleet repo snapshot the design's manifests are read from. Only designs with
	// manifests need it.
	Repo *Repo
	// Cache, when set, returns a bundle rendered before from exactly the same inputs.
	Cache *Cache
	// SecretKey keys the digests of Secrets (HMAC-SHA256); without one, a key this process
	// made up. The daemon keeps its key across restarts, so its digests stay stable.
	SecretKey []byte
	// Worker, when set, renders a design's manifests (Helm, Kustomize, YAML) in that
	// budgeted child process, within Budget; the mesh compiler, meshcd's own code, runs here.
	Worker *schema.Worker
	Budget Budget
}

// DefaultOptions returns options for a render outside Git (revision "local").
func DefaultOptions() Options { return Options{Revision: "local"} }

// Bundle is everything one design puts on one cluster.
type Bundle struct {
	Design   string
	Cluster  string
	Revision string
	// Objects are ordered for applying: CRDs, Namespaces, RBAC and config, workloads and
	// Services, then mesh policy; by kind, namespace and name within each stage.
	Objects []*unstructured.Unstructured
	// Digest covers every object's content but not the revision, so a new commit that does not
	// change what a design renders to keeps the digest.
	Digest string
	// Warnings name what the cluster's mesh cannot express and was left out, so it is never
	// dropped silently.
	Warnings []string

	// secrets are the values of the bundle's Secrets, for MaskText.
	secrets []string
}

// Error is a design that cannot be rendered for a cluster, for example a feature the
// cluster's mesh cannot express where leaving it out would be unsafe.
type Error struct {
	Design, Cluster string
	Path            string
	Message         string
	// Budget is a render stopped at its budget (time, memory, output): the same design will
	// most likely stop there on another cluster too.
	Budget bool `json:",omitempty"`
}

// OverBudget reports a render that stopped at its budget.
func OverBudget(err error) bool {
	var rerr *Error
	return errors.As(err, &rerr) && rerr.Budget
}

// SkipAfterBudget is the error of a design not rendered for a cluster because its render for
// another cluster stopped at its budget: a bomb costs its budget once per revision, not once
// per cluster.
func SkipAfterBudget(first error, cluster string) error {
	var rerr *Error
	if !errors.As(first, &rerr) || !rerr.Budget {
		return nil
	}
	return &Error{Design: rerr.Design, Cluster: cluster, Path: rerr.Path, Budget: true,
		Message: fmt.Sprintf("not rendered: its render for cluster %s stopped at the budget (%s)", rerr.Cluster, rerr.Message)}
}

func (e *Error) Error() string {
	if e.Path != "" {
		return fmt.Sprintf("design %s on cluster %s: %s: %s", e.Design, e.Cluster, e.Path, e.Message)
	}
	return fmt.Sprintf("design %s on cluster %s: %s", e.Design, e.Cluster, e.Message)
}

// Render compiles the design for the cluster. The cluster must be one the design targets.
func Render(ctx context.Context, d *schema.Design, c *schema.Cluster, opts Options) (*Bundle, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !d.Targets.Matches(c.Labels) {
		return nil, &Error{Design: d.Name, Cluster: c.Name, Message: "the design's targets do not select this cluster"}
	}
	if opts.Revision == "" {
		opts.Revision = DefaultOptions().Revision
	}
	var key string
	if opts.Cache != nil {
		var files fs.FS
		if opts.Repo != nil {
			files = opts.Repo.files
		}
		var err error
		if key, err = cacheKey(d, c, files, opts.SecretKey); err != nil {
			return nil, fmt.Errorf("design %s on cluster %s: hashing its inputs: %w", d.Name, c.Name, err)
		}
		if b := opts.Cache.get(key); b != nil {
			return withRevision(b, opts.Revision), nil
		}
	}
	var b *Bundle
	var err error
	if opts.Worker != nil && len(d.Manifests) > 0 && opts.Repo != nil {
		if opts.Budget == (Budget{}) {
			opts.Budget = DefaultBudget()
		}
		b, err = renderIsolated(ctx, d, c, opts)
	} else {
		b, err = render(ctx, d, c, opts)
	}
	if err != nil {
		return nil, err
	}
	if opts.Cache != nil {
		opts.Cache.put(key, d.Name+"\x00"+c.Name, withRevision(b, b.Revision))
	}
	return b, nil
}

func render(ctx context.Context, d *schema.Design, c *schema.Cluster, opts Options) (*Bundle, error) {
	in := compileInput{ctx: ctx, design: withIngressRollouts(d), cluster: c, services: applyOverrides(d, *c)}
	var compiler func(*compileInput, *output) error
	switch c.Mesh {
	case schema.MeshIstio:
		compiler = compileIstio
	case schema.MeshLinkerd:
		compiler = compileLinkerd
	case schema.MeshGatewayAPI:
		compiler = compileGatewayAPI
	default:
		return nil, &Error{Design: d.Name, Cluster: c.Name, Message: fmt.Sprintf("unknown mesh %q", c.Mesh)}
	}
	out := &output{}
	if d.NamespaceOwner {
		out.add(namespace(d, c)) // a namespace shared by designs is rendered by its owner alone
	}
	if err := compiler(&in, out); err != nil {
		return nil, err
	}
	if err := compileEgress(&in, out); err != nil {
		return nil, err
	}
	if err := compileIngress(&in, out); err != nil {
		return nil, err
	}
	if err := renderManifests(&in, opts.Repo, out); err != nil {
		return nil, err
	}
	if err := dedupe(&in, out); err != nil {
		return nil, err
	}
	return finish(d, c, opts, out)
}

// compileInput is what a mesh compiler reads: the design with the cluster's overrides applied.
type compileInput struct {
	ctx      context.Context
	design   *schema.Design
	cluster  *schema.Cluster
	services map[string]schema.Service
}

// fail reports a feature the cluster's mesh cannot express.
func (in *compileInput) fail(path, format string, args ...any) error {
	return &Error{Design: in.design.Name, Cluster: in.cluster.Name, Path: path, Message: fmt.Sprintf(format, args...)}
}

// output collects a compiler's objects and warnings.
type output struct {
	objects  []*unstructured.Unstructured
	warnings []string
}

func (o *output) add(objs ...*unstructured.Unstructured) { o.objects = append(o.objects, objs...) }

func (o *output) warn(format string, args ...any) {
	o.warnings = append(o.warnings, fmt.Sprintf(format, args...))
}

// applyOverrides returns the design's services with the cluster's overrides applied: route
// weights replace those of each service's last (default) route.
func applyOverrides(d *schema.Design, c schema.Cluster) map[string]schema.Service {
	out := make(map[string]schema.Service, len(d.Services))
	for name, svc := range d.Services {
		routes := make([]schema.Route, len(svc.Routes))
		copy(routes, svc.Routes)
		svc.Routes = routes
		out[name] = svc
	}
	defer applyRollouts(d, out)
	for _, o := range d.OverridesFor(c) {
		for name, so := range o.Services {
			svc, ok := out[name]
			if !ok || so.Weights == nil || len(svc.Routes) == 0 {
				continue
			}
			last := svc.Routes[len(svc.Routes)-1]
			last.To = so.Weights
			svc.Routes[len(svc.Routes)-1] = last
			out[name] = svc
		}
	}
	return out
}

// applyRollouts gives each rollout's version its current weight on its service's default
// (last) route, after the cluster's overrides: the other versions of that route share the
// rest in proportion to the weights they had (evenly when they had none).
func applyRollouts(d *schema.Design, services map[string]schema.Service) {
	for _, name := range slices.Sorted(maps.Keys(d.Gates)) {
		r := d.Gates[name].Rollout
		if r == nil || r.Current == nil {
			continue
		}
		svc, ok := services[r.Service]
		if !ok || len(svc.Routes) == 0 {
			continue
		}
		last := svc.Routes[len(svc.Routes)-1]
		if len(last.To) == 1 {
			if _, alone := last.To[r.Version]; alone {
				continue // the version is alone on the route: there is no weight to take
			}
		}
		last.To = shareWeights(last.To, r.Version, *r.Current)
		routes := slices.Clone(svc.Routes)
		routes[len(routes)-1] = last
		svc.Routes = routes
		services[r.Service] = svc
	}
}

// shareWeights gives version its weight and the other versions the rest of 100, in proportion
// to the weights they had (evenly when they had none).
func shareWeights(weights map[string]int, version string, weight int) map[string]int {
	to := map[string]int{version: weight}
	var others []string
	total := 0
	for v, w := range weights {
		if v != version {
			others = append(others, v)
			total += w
		}
	}
	slices.Sort(others)
	rest := 100 - weight
	given := 0
	for i, v := range others {
		w := rest / len(others)
		if total > 0 {
			w = rest * weights[v] / total
		}
		if i == len(others)-1 {
			w = rest - given
		}
		to[v] = w
		given += w
	}
	return to
}

// withIngressRollouts returns the design with each rollout's current weight applied to the
// ingress routes that split traffic only between versions of the rollout's service, so the
// edge moves with the mesh (blue/green is steps: [100]). The design itself is not changed.
func withIngressRollouts(d *schema.Design) *schema.Design {
	if d.Ingress == nil {
		return d
	}
	out := *d
	ing := *d.Ingress
	ing.Hosts = maps.Clone(d.Ingress.Hosts)
	for host, vh := range ing.Hosts {
		vh.Routes = rolloutRoutes(d, vh.Routes)
		ing.Hosts[host] = vh
	}
	ing.Claims = slices.Clone(d.Ingress.Claims)
	for i := range ing.Claims {
		ing.Claims[i].Routes = rolloutRoutes(d, ing.Claims[i].Routes)
	}
	out.Ingress = &ing
	return &out
}

func rolloutRoutes(d *schema.Design, routes []schema.IngressRoute) []schema.IngressRoute {
	out := slices.Clone(routes)
	for _, name := range slices.Sorted(maps.Keys(d.Gates)) {
		r := d.Gates[name].Rollout
		if r == nil || r.Current == nil {
			continue
		}
		for i, rt := range out {
			split := len(rt.Backends) > 1
			for _, b := range rt.Backends {
				if b.Service != r.Service || b.Version == "" || b.External != nil {
					split = false
				}
			}
			if !split {
				continue
			}
			backends := slices.Clone(rt.Backends)
			to := map[string]int{}
			for _, b := range backends {
				to[b.Version] += b.Weight
			}
			moved := shareWeights(to, r.Version, *r.Current)
			for j := range backends {
				backends[j].Weight = moved[backends[j].Version]
			}
			out[i].Backends = backends
		}
	}
	return out
}

// dedupe refuses an object rendered twice (by two manifests, or by a manifest and the mesh
// compiler), except a Namespace: the design's own Namespace merges into one a manifest ships,
// which keeps its labels and gains the mesh's injection marks.
func dedupe(in *compileInput, out *output) error {
	seen := map[string]int{}
	kept := out.objects[:0]
	for _, o := range out.objects {
		id := ObjectID(o)
		i, dup := seen[id]
		if !dup {
			seen[id] = len(kept)
			kept = append(kept, o)
			continue
		}
		if o.GetKind() != "Namespace" || o.GroupVersionKind().Group != "" {
			return in.fail("manifests", "%s is rendered twice; each object must come from one place", id)
		}
		first := kept[i]
		labels, ann := o.GetLabels(), o.GetAnnotations()
		for k, v := range first.GetLabels() {
			if labels == nil {
				labels = map[string]string{}
			}
			if _, set := labels[k]; !set {
				labels[k] = v
			}
		}
		for k, v := range first.GetAnnotations() {
			if ann == nil {
				ann = map[string]string{}
			}
			if _, set := ann[k]; !set {
				ann[k] = v
			}
		}
		o.SetLabels(labels)
		o.SetAnnotations(ann)
		kept[i] = o
	}
	out.objects = kept
	return nil
}
