// Package benchfleet generates the fleet repos and bundles the apply benchmarks share, so
// meshcd and its peers apply exactly the same objects.
package benchfleet

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/meshcd/meshcd/internal/testenv"
	"github.com/meshcd/meshcd/render"
	"github.com/meshcd/meshcd/schema"
)

// Bundle renders a generated design into namespace ns for an istio cluster: configMaps
// ConfigMaps from a YAML folder and services mesh services (a VirtualService and a
// DestinationRule each), plus the Namespace.
func Bundle(ctx context.Context, ns string, configMaps, services int) (*render.Bundle, error) {
	dir, err := os.MkdirTemp("", "meshcd-bench-apply-repo-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var cue strings.Builder
	fmt.Fprintf(&cue, "design: bench: {\n\tnamespace: %q\n\tmanifests: [{yaml: \"./raw\"}]\n", ns)
	for i := range services {
		fmt.Fprintf(&cue, "\tservices: \"svc%d\": {port: 8080, versions: {stable: labels: version: \"v1\", canary: labels: version: \"v2\"}, routes: [{to: {stable: 90, canary: 10}}]}\n", i)
	}
	cue.WriteString("}\n")
	var cms strings.Builder
	for i := range configMaps {
		fmt.Fprintf(&cms, "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%d}\ndata: {key: value-%d}\n", i, i)
	}
	files := map[string]string{
		"clusters/bench.cue":         "cluster: bench: {labels: {env: \"bench\"}, mesh: \"istio\"}\n",
		"designs/bench/design.cue":   cue.String(),
		"designs/bench/raw/cms.yaml": cms.String(),
	}
	if err := testenv.WriteFiles(dir, files); err != nil {
		return nil, err
	}
	fsys := os.DirFS(dir)
	fl, designs, err := schema.Load(ctx, fsys, schema.DefaultLoadOptions())
	if err != nil {
		return nil, err
	}
	return render.Render(ctx, &designs[0], &fl.Clusters[0], render.Options{Revision: "bench", Repo: render.NewRepo(fsys)})
}
