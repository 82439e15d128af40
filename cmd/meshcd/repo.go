package main

import (
	"fmt"
	"os"
	"sync"

	"github.com/meshcd/meshcd/schema"
)

// openFleetRepo opens the fleet repo folder named by a command's optional DIR argument.
// Reading through an os.Root keeps every file read inside it, links included.
func openFleetRepo(args []string) (dir string, root *os.Root, err error) {
	dir = "."
	if len(args) == 1 {
		dir = args[0]
	}
	root, err = os.OpenRoot(dir)
	if err != nil {
		return dir, nil, fmt.Errorf("opening fleet repo: %w", err)
	}
	return dir, root, nil
}

// isolatedLoadOptions evaluates the repo in meshcd re-executed as a budgeted worker, since a
// fleet repo is input from many people. One worker serves the process: it stays alive between
// evaluations and ends with meshcd.
func isolatedLoadOptions() (schema.LoadOptions, error) {
	opts := schema.DefaultLoadOptions()
	worker.once.Do(func() { worker.w, worker.err = schema.SelfWorker() })
	opts.Worker = worker.w
	return opts, worker.err
}

// renderWorker is the worker the CLI renders manifests in (the evaluation worker), or nil.
func renderWorker() *schema.Worker {
	worker.once.Do(func() { worker.w, worker.err = schema.SelfWorker() })
	return worker.w
}

var worker struct {
	once sync.Once
	w    *schema.Worker
	err  error
}
