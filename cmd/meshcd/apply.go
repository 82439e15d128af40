package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/meshcd/meshcd/reconciler"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newApplyCommand() *cobra.Command {
	var (
		f                  clusterFlags
		prune, wait, force bool
		dryRun             string
		output             string
		timeout            time.Duration
	)
	cmd := &cobra.Command{
		Use:   "apply [DIR]",
		Short: "Sync the fleet repo in DIR to its clusters once, with server-side apply",
		Long: "apply renders every design for the clusters it targets and syncs each bundle with\n" +
			"server-side apply, concurrently per cluster: unchanged objects are not sent, the inventory\n" +
			"is kept in each cluster (meshcd-system), and with --prune objects that left a design are\n" +
			"deleted. A design that fails to render is applied nowhere and prunes nothing. Each fleet\n" +
			"cluster is reached through the kubeconfig context of the same name.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.cluster == "" && f.context == "" && !f.all {
				return errors.New("say which clusters: --cluster NAME or --all")
			}
			if dryRun != "" && dryRun != "none" && dryRun != "server" {
				return fmt.Errorf("--dry-run must be none or server, not %q", dryRun)
			}
			if output != "table" && output != "json" {
				return fmt.Errorf("unknown output format %q (want table or json)", output)
			}
			targets, closeAll, err := openTargets(cmd, args, &f)
			if err != nil {
				return err
			}
			defer closeAll()
			var jobs []reconciler.Job
			for _, t := range targets {
				opts := reconciler.DefaultSyncOptions()
				opts.Policy = reconciler.PolicyFor(t.Design.Sync)
				opts.Prune, opts.DryRun, opts.Wait = prune, dryRun == "server", wait
				opts.HealthTimeout = timeout
				if force {
					opts.Policy.TakeOwnership = true
				}
				jobs = append(jobs, reconciler.Job{Cluster: t.Cluster, Bundle: t.Bundle, RenderErr: t.Err, Options: opts})
			}
			progress := newProgress(cmd.ErrOrStderr(), len(jobs))
			results := reconciler.New().SyncAll(cmd.Context(), jobs, reconciler.DefaultQueueOptions())
			progress.done()
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(results); err != nil {
					return err
				}
			} else {
				printSyncTable(cmd.OutOrStdout(), results)
			}
			for _, res := range results {
				for _, e := range res.Entries {
					if e.AdoptedFrom != "" && e.Action != reconciler.Failed {
						fmt.Fprintf(cmd.ErrOrStderr(), "design %s on cluster %s adopted %s from design %s\n", res.Design, res.Cluster, e.Object, e.AdoptedFrom)
					}
				}
			}
			failed := 0
			for i, res := range results {
				switch {
				case res.Error != "":
					failed++
					fmt.Fprintf(cmd.ErrOrStderr(), "design %s on cluster %s: %s\n", targets[i].Design.Name, res.Cluster, res.Error)
				case wait && dryRun != "server" && res.Health.Status != "Current":
					// Applied, but not serving: a controller rejected an object, or did not
					// get to it within --timeout.
					failed++
					fmt.Fprintf(cmd.ErrOrStderr(), "design %s on cluster %s: %s after waiting:\n", targets[i].Design.Name, res.Cluster, res.Health.Status)
					for _, o := range res.Health.NotReady {
						fmt.Fprintf(cmd.ErrOrStderr(), "  %s %s: %s\n", o.Object, o.Status, o.Message)
					}
				}
			}
			if failed > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d of %d syncs failed", failed, len(results))}
			}
			return nil
		},
	}
	f.register(cmd, true)
	cmd.Flags().BoolVar(&prune, "prune", false, "delete objects that left a design (when its sync.prune allows)")
	cmd.Flags().BoolVar(&force, "force-conflicts", false, "take over fields another manager set (as kubectl apply --server-side --force-conflicts); a design's sync.takeOwnership does the same")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until every object is Current: routes and proxies once their controller accepted them, the rest by kstatus; exit 1 if not")
	cmd.Flags().DurationVar(&timeout, "timeout", reconciler.DefaultSyncOptions().HealthTimeout, "how long --wait waits (a controller's rejection that stands for 5s ends it sooner)")
	cmd.Flags().StringVar(&dryRun, "dry-run", "none", "none or server: send every write as a server-side dry run")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

func printSyncTable(w io.Writer, results []*reconciler.SyncResult) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tDESIGN\tREVISION\tCREATED\tCONFIGURED\tUNCHANGED\tPRUNED\tSKIPPED\tFAILED\tHEALTH\tTIME")
	for _, r := range results {
		health := r.Health.Status
		if health == "" {
			health = "-"
		}
		if r.Error != "" && len(r.Entries) == 0 {
			health = "error"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", r.Cluster, r.Design, r.Revision,
			r.Count(reconciler.Created), r.Count(reconciler.Configured), r.Count(reconciler.Unchanged),
			r.Count(reconciler.Pruned), r.Count(reconciler.Skipped), r.Count(reconciler.Failed), health, r.Duration.Round(time.Millisecond))
	}
	tw.Flush()
}

// progress shows a ticking line on a terminal while a long operation runs, and nothing when
// stderr is piped or a file.
type progress struct {
	w    io.Writer
	stop chan struct{}
	tty  bool
}

func newProgress(w io.Writer, jobs int) *progress {
	p := &progress{w: w, stop: make(chan struct{})}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
		start := time.Now()
		go func() {
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-p.stop:
					fmt.Fprint(w, "\r\033[K")
					return
				case <-t.C:
					fmt.Fprintf(w, "\rsyncing %d design×cluster pairs … %s", jobs, time.Since(start).Round(time.Second))
				}
			}
		}()
	}
	return p
}

func (p *progress) done() {
	if p.tty {
		p.stop <- struct{}{}
	}
}
