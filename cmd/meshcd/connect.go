package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/meshcd/meshcd/fleet"
	"github.com/meshcd/meshcd/internal/daemon"
	"github.com/meshcd/meshcd/render"
	"github.com/meshcd/meshcd/schema"
	"github.com/spf13/cobra"
)

// target is one design for one cluster, rendered, with the cluster connected.
type target struct {
	Design  *schema.Design
	Cluster *fleet.Cluster
	Bundle  *render.Bundle
	Err     error // the render error; nothing may be applied for it
}

// clusterFlags are the flags every command that talks to clusters shares.
type clusterFlags struct {
	kubeconfig, context, cluster, design, revision, config string
	all, allowExec                                         bool
}

func (f *clusterFlags) register(cmd *cobra.Command, withAll bool) {
	cmd.Flags().StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig with a context per fleet cluster, named like it (default $KUBECONFIG or ~/.kube/config)")
	cmd.Flags().StringVar(&f.config, "config", "", "reach the clusters with the credentials of this daemon config (meshcd.yaml) instead of a kubeconfig")
	cmd.Flags().StringVar(&f.context, "context", "", "reach the cluster through this context (with --cluster; alone it names the cluster too)")
	cmd.Flags().StringVar(&f.cluster, "cluster", "", "only this fleet cluster")
	cmd.Flags().StringVar(&f.design, "design", "", "only this design")
	cmd.Flags().StringVar(&f.revision, "revision", "local", "the revision recorded in the inventory")
	cmd.Flags().BoolVar(&f.allowExec, "allow-exec", false, "let the kubeconfig's exec and auth-provider credential plugins run (EKS, GKE, AKS logins); refused without it, since a kubeconfig can name any program")
	if withAll {
		cmd.Flags().BoolVar(&f.all, "all", false, "every cluster each design targets")
	}
}

func (f *clusterFlags) kubeconfigPath() string {
	if f.kubeconfig != "" {
		return f.kubeconfig
	}
	if env := os.Getenv("KUBECONFIG"); env != "" {
		return filepath.SplitList(env)[0]
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".kube", "config")
}

// openTargets loads and validates the fleet repo named by args, renders every selected design
// for every selected cluster it targets, and connects those clusters. Render errors stay with
// their target so the caller reports them and applies nothing for it.
func openTargets(cmd *cobra.Command, args []string, f *clusterFlags) ([]target, func(), error) {
	if f.cluster == "" && f.context != "" {
		f.cluster = f.context
	}
	dir, root, err := openFleetRepo(args)
	if err != nil {
		return nil, nil, err
	}
	defer root.Close()
	files := root.FS()
	fl, designs, err := loadRepo(cmd, dir, files)
	if err != nil {
		return nil, nil, err
	}
	var daemonClusters map[string]fleet.Credentials
	if f.config != "" {
		cfg, err := daemon.LoadConfig(f.config)
		if err != nil {
			return nil, nil, err
		}
		daemonClusters = cfg.Clusters
	}
	repo := render.NewRepo(files)
	connected := map[string]*fleet.Cluster{}
	closeAll := func() {
		for _, c := range connected {
			c.Live.Stop()
		}
	}
	var out []target
	foundDesign, foundCluster := f.design == "", f.cluster == ""
	for i := range designs {
		d := &designs[i]
		if f.design != "" && d.Name != f.design {
			continue
		}
		foundDesign = true
		for _, sc := range d.TargetClusters(fl) {
			if f.cluster != "" && sc.Name != f.cluster {
				continue
			}
			foundCluster = true
			c, ok := connected[sc.Name]
			if !ok {
				ctxName := sc.Name
				if f.context != "" {
					ctxName = f.context
				}
				creds := fleet.Credentials{Kubeconfig: f.kubeconfigPath(), Context: ctxName, AllowExec: f.allowExec}
				if daemonClusters != nil {
					var ok bool
					if creds, ok = daemonClusters[sc.Name]; !ok {
						closeAll()
						return nil, nil, fmt.Errorf("cluster %s: no credentials in %s", sc.Name, f.config)
					}
				}
				cfg, err := creds.RESTConfig(cmd.Context(), sc.Name, nil)
				if err != nil {
					closeAll()
					return nil, nil, err
				}
				if c, err = fleet.Connect(sc, cfg, fleet.DefaultClientOptions()); err != nil {
					closeAll()
					return nil, nil, err
				}
				connected[sc.Name] = c
			}
			b, err := render.Render(cmd.Context(), d, &sc, render.Options{Revision: f.revision, Repo: repo, Worker: renderWorker()})
			out = append(out, target{Design: d, Cluster: c, Bundle: b, Err: err})
		}
	}
	if !foundDesign {
		closeAll()
		return nil, nil, fmt.Errorf("no design named %q", f.design)
	}
	if !foundCluster {
		closeAll()
		return nil, nil, fmt.Errorf("no cluster named %q is targeted by the selected designs", f.cluster)
	}
	return out, closeAll, nil
}
