package main

import (
	"fmt"
	"io"
	"os"

	"github.com/meshcd/meshcd/render"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func newImportCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Turn existing objects into design sections",
	}
	var name string
	ingress := &cobra.Command{
		Use:   "ingress [FILE...]",
		Short: "Print a design with the hosts and routes of Ingress or Contour HTTPProxy YAML",
		Long: "import ingress reads Kubernetes Ingress (networking.k8s.io/v1) and Contour HTTPProxy objects\n" +
			"of one namespace from the files (or stdin) and prints an equivalent design to put in\n" +
			"designs/NAME/design.cue. It never writes to a cluster. What cannot be carried over exactly\n" +
			"is said on stderr.",
		RunE: func(cmd *cobra.Command, args []string) error {
			var objs []*unstructured.Unstructured
			read := func(label string, r io.Reader) error {
				data, err := io.ReadAll(io.LimitReader(r, 32<<20))
				if err != nil {
					return fmt.Errorf("%s: %w", label, err)
				}
				got, err := render.DecodeObjects(data)
				if err != nil {
					return fmt.Errorf("%s: %w", label, err)
				}
				objs = append(objs, got...)
				return nil
			}
			if len(args) == 0 {
				if err := read("stdin", cmd.InOrStdin()); err != nil {
					return err
				}
			}
			for _, f := range args {
				fh, err := os.Open(f)
				if err != nil {
					return err
				}
				err = read(f, fh)
				fh.Close()
				if err != nil {
					return err
				}
			}
			imp, err := render.ImportIngress(objs)
			if err != nil {
				return err
			}
			for _, w := range imp.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			src, err := imp.CUE(name)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(src)
			return err
		},
	}
	ingress.Flags().StringVar(&name, "name", "imported", "the design's name (its folder under designs/)")
	cmd.AddCommand(ingress)
	return cmd
}
