package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"

	"github.com/meshcd/meshcd/render"
	"github.com/meshcd/meshcd/schema"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

func newRenderCommand() *cobra.Command {
	var (
		output, clusterName, designName, revision string
		showSecrets                               bool
	)
	cmd := &cobra.Command{
		Use:   "render [DIR]",
		Short: "Print the objects each design puts on each cluster it targets",
		Long: "render loads the fleet repo in DIR (default .), compiles every design for every cluster it\n" +
			"targets, and prints the objects in apply order, ready to pipe to kubectl. Warnings about\n" +
			"what a cluster's mesh cannot express go to stderr. Secret values are masked unless\n" +
			"--show-secrets is given.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "yaml" && output != "json" {
				return fmt.Errorf("unknown output format %q (want yaml or json)", output)
			}
			dir, root, err := openFleetRepo(args)
			if err != nil {
				return err
			}
			defer root.Close()
			files := root.FS()
			fleet, designs, err := loadRepo(cmd, dir, files)
			if err != nil {
				return err
			}
			repo := render.NewRepo(files)
			var bundles []*render.Bundle
			var failed []error
			foundDesign, foundCluster := designName == "", clusterName == ""
			for i := range designs {
				d := &designs[i]
				if designName != "" && d.Name != designName {
					continue
				}
				foundDesign = true
				for _, c := range d.TargetClusters(fleet) {
					if clusterName != "" && c.Name != clusterName {
						continue
					}
					foundCluster = true
					b, err := render.Render(cmd.Context(), d, &c, render.Options{Revision: revision, Repo: repo, Worker: renderWorker()})
					if err != nil {
						failed = append(failed, err)
						continue
					}
					bundles = append(bundles, b)
				}
			}
			collisions := render.Collisions(bundles)
			for _, key := range slices.Sorted(maps.Keys(collisions)) {
				failed = append(failed, collisions[key])
			}
			if !foundDesign {
				return fmt.Errorf("no design named %q", designName)
			}
			if !foundCluster {
				return fmt.Errorf("no cluster named %q is targeted by the selected designs", clusterName)
			}
			for _, b := range bundles {
				for _, w := range b.Warnings {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: design %s on cluster %s: %s\n", b.Design, b.Cluster, w)
				}
				if !showSecrets {
					b.Objects = render.MaskSecrets(b.Objects)
				}
			}
			if err := printBundles(cmd.OutOrStdout(), bundles, output); err != nil {
				return err
			}
			if len(failed) > 0 {
				return &exitError{code: 1, err: errors.Join(failed...)}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "yaml", "output format: yaml or json")
	cmd.Flags().StringVar(&clusterName, "cluster", "", "only this cluster")
	cmd.Flags().StringVar(&designName, "design", "", "only this design")
	cmd.Flags().StringVar(&revision, "revision", "local", "the revision objects are annotated with")
	cmd.Flags().BoolVar(&showSecrets, "show-secrets", false, "print Secret values instead of masking them")
	return cmd
}

// loadRepo loads and validates the fleet repo, evaluating it first in meshcd's budgeted
// worker process.
func loadRepo(cmd *cobra.Command, dir string, files fs.FS) (*schema.Fleet, []schema.Design, error) {
	opts, err := isolatedLoadOptions()
	if err != nil {
		return nil, nil, err
	}
	fleet, designs, err := schema.Load(cmd.Context(), files, opts)
	var verr *schema.ValidationError
	if errors.As(err, &verr) {
		for _, is := range verr.Issues {
			fmt.Fprintln(cmd.ErrOrStderr(), is)
		}
		return nil, nil, &exitError{code: 1, err: fmt.Errorf("%d problems in %s; run meshcd validate", len(verr.Issues), dir)}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", dir, err)
	}
	return fleet, designs, nil
}

func printBundles(w io.Writer, bundles []*render.Bundle, output string) error {
	if output == "json" {
		type jsonBundle struct {
			Design, Cluster, Revision, Digest string
			Warnings                          []string `json:",omitempty"`
			Objects                           []map[string]any
		}
		out := make([]jsonBundle, 0, len(bundles))
		for _, b := range bundles {
			jb := jsonBundle{Design: b.Design, Cluster: b.Cluster, Revision: b.Revision, Digest: b.Digest, Warnings: b.Warnings}
			for _, o := range b.Objects {
				jb.Objects = append(jb.Objects, o.Object)
			}
			out = append(out, jb)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	for _, b := range bundles {
		fmt.Fprintf(w, "# design %s on cluster %s, revision %s, %d objects, %s\n", b.Design, b.Cluster, b.Revision, len(b.Objects), b.Digest)
		for _, o := range b.Objects {
			data, err := yaml.Marshal(o.Object)
			if err != nil {
				return fmt.Errorf("%s: %w", render.ObjectID(o), err)
			}
			fmt.Fprintf(w, "---\n%s", data)
		}
	}
	return nil
}
