package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"strings"

	"github.com/meshcd/meshcd/render"
	"github.com/meshcd/meshcd/schema"
	"github.com/spf13/cobra"
)

// validateReport is `meshcd validate -o json`: stable field names for PR bots and editors.
type validateReport struct {
	OK       bool           `json:"ok"`
	Designs  int            `json:"designs"`
	Clusters int            `json:"clusters"`
	Issues   []schema.Issue `json:"issues"`
}

func newValidateCommand() *cobra.Command {
	var (
		output     string
		schemaOnly bool
	)
	cmd := &cobra.Command{
		Use:   "validate [DIR]",
		Short: "Check every design and cluster of a fleet repo and print every problem",
		Long: "validate loads the fleet repo in DIR (default .), checks it against meshcd's schema and\n" +
			"cross-field rules, then renders every design for every cluster it targets, offline, so\n" +
			"what only a render finds (a chart that fails, a duplicate env name, an object two designs\n" +
			"render) is found too. It prints every problem as file:line:col: path: message.\n" +
			"--schema-only skips the renders. Exit status: 0 valid, 1 problems found, 2 the repo could\n" +
			"not be read.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "" && output != "json" {
				return fmt.Errorf("unknown output format %q (want json)", output)
			}
			dir, root, err := openFleetRepo(args)
			if err != nil {
				return err
			}
			defer root.Close()
			opts, err := isolatedLoadOptions()
			if err != nil {
				return err
			}
			// One evaluation in the budgeted worker, and, unless --schema-only, one in this
			// process for the renders (Load runs both); checking first and loading after would
			// evaluate the repo a third time.
			var (
				fleet   *schema.Fleet
				designs []schema.Design
				sum     schema.Summary
			)
			if schemaOnly {
				sum, err = schema.Check(cmd.Context(), root.FS(), opts)
			} else {
				fleet, designs, err = schema.Load(cmd.Context(), root.FS(), opts)
				if err == nil {
					sum = schema.Summary{Designs: len(designs), Clusters: len(fleet.Clusters)}
				}
			}
			var verr *schema.ValidationError
			if err != nil && !errors.As(err, &verr) {
				return fmt.Errorf("%s: %w", dir, err)
			}
			rep := validateReport{OK: err == nil, Issues: []schema.Issue{}}
			if verr != nil {
				rep.Issues = verr.Issues
			} else {
				rep.Designs, rep.Clusters = sum.Designs, sum.Clusters
			}
			if rep.OK && !schemaOnly {
				rep.Issues = renderIssues(cmd.Context(), cmd.ErrOrStderr(), root.FS(), fleet, designs)
				rep.OK = len(rep.Issues) == 0
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else if rep.OK {
				fmt.Fprintf(out, "ok: %d designs, %d clusters\n", rep.Designs, rep.Clusters)
			} else {
				for _, is := range rep.Issues {
					fmt.Fprintln(out, is)
				}
			}
			if !rep.OK {
				return &exitError{code: 1, err: fmt.Errorf("%d problems in %s", len(rep.Issues), dir)}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json")
	cmd.Flags().BoolVar(&schemaOnly, "schema-only", false, "check the schema and rules only, without rendering")
	return cmd
}

// renderIssues renders every design for every cluster it targets, as the daemon would but
// without a cluster, and returns what failed as issues on the design's folder: render
// errors and objects two designs render for one cluster. Warnings go to w.
func renderIssues(ctx context.Context, w io.Writer, files fs.FS, fleet *schema.Fleet, designs []schema.Design) []schema.Issue {
	repo := render.NewRepo(files)
	dirs := map[string]string{}
	var bundles []*render.Bundle
	var issues []schema.Issue
	for i := range designs {
		d := &designs[i]
		dirs[d.Name] = d.Dir
		targets := d.TargetClusters(fleet)
		if len(targets) == 0 {
			fmt.Fprintf(w, "warning: %s: targets no cluster of the repo; nothing is rendered or applied\n", d.Dir)
		}
		for _, c := range targets {
			b, err := render.Render(ctx, d, &c, render.Options{Repo: repo, Worker: renderWorker()})
			if err != nil {
				issues = append(issues, renderIssue(d, c.Name, err))
				continue
			}
			for _, warning := range b.Warnings {
				fmt.Fprintf(w, "warning: %s: cluster %s: %s\n", d.Dir, c.Name, warning)
			}
			bundles = append(bundles, b)
		}
	}
	collisions := render.Collisions(bundles)
	for _, key := range slices.Sorted(maps.Keys(collisions)) {
		design, cluster, _ := strings.Cut(key, "/")
		msg := collisions[key].Error()
		var rerr *render.Error
		if errors.As(collisions[key], &rerr) {
			msg = rerr.Message
		}
		issues = append(issues, schema.Issue{File: dirs[design], Message: "cluster " + cluster + ": " + msg})
	}
	return issues
}

// renderIssue places a render failure where the design says what failed, naming the cluster.
func renderIssue(d *schema.Design, cluster string, err error) schema.Issue {
	var rerr *render.Error
	if errors.As(err, &rerr) && rerr.Path != "" {
		return d.Locate(rerr.Path, "cluster "+cluster+": "+rerr.Message)
	}
	return schema.Issue{File: d.Dir, Message: "cluster " + cluster + ": " + err.Error()}
}
