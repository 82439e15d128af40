package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/meshcd/meshcd/reconciler"
	"github.com/spf13/cobra"
)

func newDiffCommand() *cobra.Command {
	var f clusterFlags
	cmd := &cobra.Command{
		Use:   "diff [DIR]",
		Short: "Show what apply would change, as a unified diff against the live clusters",
		Long: "diff renders every design for the clusters it targets, asks each apiserver what a\n" +
			"server-side apply would make of every object (a dry run, so defaults and other managers'\n" +
			"fields are accounted for) and prints a unified YAML diff against the live objects,\n" +
			"including objects a prune would delete. Secret values are masked. Exit status: 0 no\n" +
			"difference, 1 differences, 2 error — like kubectl diff.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			targets, closeAll, err := openTargets(cmd, args, &f)
			if err != nil {
				return err
			}
			defer closeAll()
			changed := false
			var errs []error
			for _, t := range targets {
				if t.Err != nil {
					errs = append(errs, t.Err)
					continue
				}
				policy := reconciler.PolicyFor(t.Design.Sync)
				diffs, err := reconciler.Diff(cmd.Context(), t.Cluster, t.Bundle, reconciler.DiffOptions{Policy: policy})
				if err != nil {
					errs = append(errs, err)
				}
				for _, d := range diffs {
					changed = true
					printDiff(cmd.OutOrStdout(), t.Bundle.Design, t.Cluster.Name, d)
				}
			}
			if len(errs) > 0 {
				return &exitError{code: 2, err: errors.Join(errs...)}
			}
			if changed {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	f.register(cmd, false)
	return cmd
}

func printDiff(w io.Writer, design, cluster string, d reconciler.ObjectDiff) {
	fmt.Fprintf(w, "# design %s on cluster %s: %s (%s)\n%s", design, cluster, d.Object, d.Change, d.Unified)
}
