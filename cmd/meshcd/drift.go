package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/meshcd/meshcd/drift"
	"github.com/meshcd/meshcd/reconciler"
	"github.com/meshcd/meshcd/render"
	"github.com/spf13/cobra"
)

func newDriftCommand() *cobra.Command {
	var (
		f      clusterFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "drift [DIR]",
		Short: "Report where live objects no longer hold what the fleet repo renders",
		Long: "drift renders every design for the clusters it targets and compares each live object\n" +
			"with what the apiserver would store for it (a server-side dry run, so its normalisation of\n" +
			"quantities and defaults is not drift): fields meshcd sets that were edited, objects deleted\n" +
			"after meshcd applied them, objects missing (never applied), and fields another manager\n" +
			"took over. The design's ignore rules and presets apply. It changes nothing and prints field\n" +
			"paths, never values. Exit status: 0 no drift, 1 drift, 2 error.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("unknown output format %q (want table or json)", output)
			}
			targets, closeAll, err := openTargets(cmd, args, &f)
			if err != nil {
				return err
			}
			defer closeAll()
			var reports []drift.Report
			var errs []error
			detectors := map[string]*drift.Detector{}
			for _, t := range targets {
				if t.Err != nil {
					errs = append(errs, t.Err)
					continue
				}
				rules, err := drift.NewRules(t.Design.Sync.Ignore, t.Design.Sync.Presets)
				if err != nil {
					errs = append(errs, fmt.Errorf("design %s: %w", t.Design.Name, err))
					continue
				}
				det, ok := detectors[t.Cluster.Name]
				if !ok {
					det = drift.NewDetector(t.Cluster, drift.Options{})
					detectors[t.Cluster.Name] = det
				}
				for _, o := range t.Bundle.Objects {
					if _, err := t.Cluster.Live.Watch(cmd.Context(), o.GroupVersionKind()); err != nil {
						errs = append(errs, err)
					}
				}
				det.Track(t.Design.Name, t.Bundle.Objects, t.Design.Sync.Drift, rules)
				// What the apiserver would store for the render, so its own normalisation is
				// not drift; and what meshcd applied before, so a removed object is told
				// apart from one never applied.
				if err := det.AskStored(cmd.Context(), t.Bundle.Objects); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: design %s on cluster %s: %v\n", t.Design.Name, t.Cluster.Name, err)
				}
				if inv, err := reconciler.ReadInventory(cmd.Context(), t.Cluster, t.Design.Name); err == nil {
					var ids []string
					for id, it := range inv.Objects {
						if it.ResourceVersion != "" {
							ids = append(ids, id)
						}
					}
					det.MarkApplied(ids)
				} else {
					errs = append(errs, err)
				}
				reports = append(reports, drift.Report{Cluster: t.Cluster.Name, Design: t.Design.Name})
			}
			found := 0
			for i := range reports {
				for _, e := range detectors[reports[i].Cluster].CheckAll() {
					if belongs(targets, reports[i], e.Object) {
						reports[i].Entries = append(reports[i].Entries, e)
						found++
					}
				}
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(reports); err != nil {
					return err
				}
			} else if found > 0 {
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "CLUSTER\tDESIGN\tOBJECT\tDRIFT\tFIELDS\tLAST CHANGED BY")
				for _, r := range reports {
					for _, e := range r.Entries {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Cluster, r.Design, e.Object, e.Kind, strings.Join(e.Fields, " "), e.By)
					}
				}
				tw.Flush()
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "no drift in %d design×cluster pairs\n", len(reports))
			}
			if len(errs) > 0 {
				return &exitError{code: 2, err: errors.Join(errs...)}
			}
			if found > 0 {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	f.register(cmd, false)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

// belongs reports whether the object is one the report's design renders for its cluster.
func belongs(targets []target, r drift.Report, object string) bool {
	for _, t := range targets {
		if t.Bundle == nil || t.Cluster.Name != r.Cluster || t.Design.Name != r.Design {
			continue
		}
		for _, o := range t.Bundle.Objects {
			if render.ObjectID(o) == object {
				return true
			}
		}
	}
	return false
}
