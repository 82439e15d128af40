package reconciler

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/meshcd/meshcd/fleet"
	"github.com/meshcd/meshcd/internal/testenv"
	"github.com/meshcd/meshcd/render"
	"github.com/meshcd/meshcd/schema"
)

// The child process of TestKilledBetweenApplyAndPrune: it syncs the fleet repo in the folder
// named by childEnv to the kubeconfig's cluster and exits with childDied just before pruning.
const (
	childEnv        = "MESHCD_RECONCILER_CHILD_REPO"
	childKubeconfig = "MESHCD_RECONCILER_CHILD_KUBECONFIG"
	childDied       = 3
)

func runChild() int {
	ctx := context.Background()
	fsys := os.DirFS(os.Getenv(childEnv))
	fl, designs, err := schema.Load(ctx, fsys, schema.DefaultLoadOptions())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	d := &designs[0]
	var target schema.Cluster
	for _, c := range d.TargetClusters(fl) {
		if c.Name == "east" {
			target = c
		}
	}
	b, err := render.Render(ctx, d, &target, render.Options{Revision: "r2", Repo: render.NewRepo(fsys)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg, err := fleet.Credentials{Kubeconfig: os.Getenv(childKubeconfig)}.RESTConfig(ctx, "east", nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c, err := fleet.Connect(target, cfg, fleet.DefaultClientOptions())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	opts := DefaultSyncOptions()
	opts.Policy = PolicyFor(d.Sync)
	opts.BeforePrune = func([]string) { os.Exit(childDied) }
	if _, err := New().Sync(ctx, c, b, opts); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0 // not reached when anything is pruned
}

func writeRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := testenv.WriteFiles(dir, files); err != nil {
		t.Fatal(err)
	}
	return dir
}
