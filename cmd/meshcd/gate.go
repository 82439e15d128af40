package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/meshcd/meshcd/gates"
	"github.com/spf13/cobra"
)

func newGateCommand() *cobra.Command {
	gate := &cobra.Command{Use: "gate", Short: "Performance gates"}
	var (
		dir, cluster, url, revision, statusDir, output string
	)
	run := &cobra.Command{
		Use:   "run DESIGN/GATE",
		Short: "Run one performance gate now and print its result and verdict",
		Long: "gate run loads the fleet repo (--repo, default .), sends the gate's fortio load to its URL\n" +
			"(or --url, for example a port-forward), and judges the result against the gate's\n" +
			"thresholds and, with --status-dir, its regression budget against the last passing run in\n" +
			"that folder's history. With --status-dir it also writes the status files (latest JSON,\n" +
			"history, Markdown summary, SVG chart) there, ready to commit. Exit status: 0 passed,\n" +
			"1 failed, 2 error.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			designName, gateName, ok := strings.Cut(args[0], "/")
			if !ok || designName == "" || gateName == "" {
				return fmt.Errorf("want DESIGN/GATE, got %q", args[0])
			}
			if output != "text" && output != "json" {
				return fmt.Errorf("unknown output format %q (want text or json)", output)
			}
			_, root, err := openFleetRepo([]string{dir})
			if err != nil {
				return err
			}
			defer root.Close()
			fl, designs, err := loadRepo(cmd, dir, root.FS())
			if err != nil {
				return err
			}
			for i := range designs {
				d := &designs[i]
				if d.Name != designName {
					continue
				}
				g, ok := d.Gates[gateName]
				if !ok {
					return fmt.Errorf("design %s has no gate %q", designName, gateName)
				}
				if cluster == "" {
					targets := d.TargetClusters(fl)
					if len(targets) != 1 {
						return fmt.Errorf("design %s targets %d clusters: say which with --cluster", designName, len(targets))
					}
					cluster = targets[0].Name
				}
				var baseline *gates.HistoryLine
				var prior []byte
				if statusDir != "" {
					prior, err = os.ReadFile(filepath.Join(statusDir, "gates", designName, gateName, cluster+".history.jsonl"))
					if err != nil && !errors.Is(err, os.ErrNotExist) {
						return err
					}
					if baseline, err = gates.Baseline(prior); err != nil {
						return fmt.Errorf("%s history: %w", args[0], err)
					}
				}
				res, err := gates.Run(cmd.Context(), g, gates.Target{URL: url, Cluster: cluster, Design: designName, Gate: gateName, Revision: revision})
				if err != nil {
					return err
				}
				v, err := gates.Judge(res, g, baseline)
				if err != nil {
					return err
				}
				if statusDir != "" {
					files, err := gates.Files(res, v, prior)
					if err != nil {
						return err
					}
					for name, data := range files {
						p := filepath.Join(statusDir, strings.TrimPrefix(name, "status/"))
						if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
							return err
						}
						if err := os.WriteFile(p, data, 0o644); err != nil {
							return err
						}
					}
				}
				if output == "json" {
					enc := json.NewEncoder(cmd.OutOrStdout())
					enc.SetIndent("", "  ")
					if err := enc.Encode(struct {
						Result  *gates.Result `json:"result"`
						Verdict gates.Verdict `json:"verdict"`
					}{res, v}); err != nil {
						return err
					}
				} else {
					l := res.Latencies
					fmt.Fprintf(cmd.OutOrStdout(), "gate %s on %s: %d requests at %.1f QPS, p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, error rate %.2f%%\n",
						args[0], cluster, res.Requests, res.ActualQPS, l.P50, l.P90, l.P99, res.ErrorRate*100)
					if res.Aborted != "" {
						fmt.Fprintf(cmd.OutOrStdout(), "stopped early: %s\n", res.Aborted)
					}
					fmt.Fprint(cmd.OutOrStdout(), v)
				}
				if !v.Pass {
					return &exitError{code: 1}
				}
				return nil
			}
			return fmt.Errorf("no design named %q", designName)
		},
	}
	run.Flags().StringVar(&dir, "repo", ".", "the fleet repo folder")
	run.Flags().StringVar(&cluster, "cluster", "", "the cluster the result is recorded for (default: the design's only target)")
	run.Flags().StringVar(&url, "url", "", "send the load here instead of the gate's url")
	run.Flags().StringVar(&revision, "revision", "local", "the revision the result is recorded for")
	run.Flags().StringVar(&statusDir, "status-dir", "", "read the baseline from and write status files to this folder (the repo's status/)")
	run.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	gate.AddCommand(run)
	return gate
}
