package main

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/meshcd/meshcd/internal/daemon"
	"github.com/spf13/cobra"
)

func newRunCommand() *cobra.Command {
	var (
		config, shardID string
		shards          int
	)
	cmd := &cobra.Command{
		Use:   "run --config meshcd.yaml",
		Short: "Run the daemon: poll Git, sync every cluster, heal drift, run gates, commit status",
		Long: "run keeps every cluster of the config equal to its fleet repo: it polls the repos (and\n" +
			"takes webhooks), validates and renders each new revision, syncs each design to each cluster\n" +
			"it targets, watches for drift, runs the gates a change triggers, and commits status files\n" +
			"back, one commit per round. SIGTERM stops it after the work in flight.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if config == "" {
				return errors.New("--config is required")
			}
			cfg, err := daemon.LoadConfig(config)
			var cerr *daemon.ConfigError
			if errors.As(err, &cerr) {
				for _, p := range cerr.Problems {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n", cerr.File, p)
				}
				return &exitError{code: 2, err: fmt.Errorf("%d problems in %s", len(cerr.Problems), config)}
			}
			if err != nil {
				return err
			}
			id, err := daemon.ParseShardID(shardID, shards)
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)).With("shard", id)
			d, err := daemon.New(cfg, daemon.Shard{ID: id, Of: max(shards, 1)}, log)
			if err != nil {
				return err
			}
			return d.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&config, "config", "", "the daemon's config file")
	cmd.Flags().IntVar(&shards, "shards", 1, "how many shards split the clusters (by a stable hash of their names)")
	cmd.Flags().StringVar(&shardID, "shard-id", "0", "this replica's shard: 0 to shards-1, or auto for the StatefulSet ordinal")
	return cmd
}
