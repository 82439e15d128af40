package main

import (
	"encoding/json"
	"errors"
	"fmt"

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
	var output string
	cmd := &cobra.Command{
		Use:   "validate [DIR]",
		Short: "Check every design and cluster of a fleet repo and print every problem",
		Long: "validate loads the fleet repo in DIR (default .), checks it against meshcd's schema and\n" +
			"cross-field rules, and prints every problem as file:line:col: path: message.\n" +
			"Exit status: 0 valid, 1 problems found, 2 the repo could not be read.",
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
			sum, err := schema.Check(cmd.Context(), root.FS(), opts)
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
	return cmd
}
