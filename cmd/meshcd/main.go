// Command meshcd keeps the service-mesh state of a fleet of Kubernetes clusters equal to a Git
// repository and gates changes on measured performance.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/meshcd/meshcd/gates"
	"github.com/meshcd/meshcd/schema"
)

func main() {
	// meshcd re-executes itself to evaluate untrusted CUE in a process it can kill, and to run
	// gate loads outside the daemon at a lower priority.
	schema.ServeWorkerIfRequested()
	gates.ServeLoadIfRequested()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
