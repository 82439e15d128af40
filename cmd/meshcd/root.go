package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code out of a subcommand (for example `diff`'s 1 for
// "differences found"), so commands never call os.Exit themselves.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// newRootCommand builds the meshcd command tree. Output goes to the given writers so tests can
// run the CLI in-process.
func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "meshcd",
		Short:         "Keep many clusters' service mesh equal to Git, gated on measured performance",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newVersionCommand(), newValidateCommand(), newRenderCommand(), newImportCommand(), newDiffCommand(), newApplyCommand(), newDriftCommand(), newGateCommand(), newRunCommand())
	return root
}

// run executes the CLI and returns the process exit code: 0 on success, the code an exitError
// asks for, and 2 for any other error (usage or runtime), matching kubectl diff's convention.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCommand(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(stderr, "error:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "error:", err)
	return 2
}
