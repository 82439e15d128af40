package schema

import (
	"context"
	_ "embed"
	"fmt"
	"io/fs"
	"time"

	"github.com/meshcd/meshcd/internal/race"
)

//go:embed cue/schema.cue
var schemaSource []byte

// schemaFile is the name CUE gives the embedded schema in positions; issues never point there.
const schemaFile = "meshcd-schema.cue"

// LoadOptions bounds what loading a fleet repo may cost.
type LoadOptions struct {
	// MaxFileBytes refuses any design or cluster file larger than this.
	MaxFileBytes int64
	// MaxTotalBytes refuses a repo whose design and cluster files add up to more than this.
	MaxTotalBytes int64
	// Timeout bounds evaluation.
	Timeout time.Duration
	// MaxMemoryBytes bounds the heap of an evaluation in a Worker.
	MaxMemoryBytes int64
	// Worker, when set, evaluates the repo first in a separate process that is killed at the
	// Timeout or past MaxMemoryBytes; only a repo that passed there is evaluated in this
	// process. Without a Worker, evaluation runs here and a timeout only abandons it: CUE
	// cannot be cancelled, so a hostile repo can still cost this process CPU and memory.
	Worker *Worker
}

// DefaultLoadOptions returns the limits meshcd uses unless configured otherwise. The time
// limit is a release build's; a race-built process (the tests') gets race.Slowdown times it.
func DefaultLoadOptions() LoadOptions {
	return LoadOptions{MaxFileBytes: 1 << 20, MaxTotalBytes: 32 << 20, Timeout: 20 * time.Second * race.Slowdown, MaxMemoryBytes: 1 << 30}
}

func (o LoadOptions) withDefaults() LoadOptions {
	def := DefaultLoadOptions()
	if o.MaxFileBytes <= 0 {
		o.MaxFileBytes = def.MaxFileBytes
	}
	if o.MaxTotalBytes <= 0 {
		o.MaxTotalBytes = def.MaxTotalBytes
	}
	if o.Timeout <= 0 {
		o.Timeout = def.Timeout
	}
	if o.MaxMemoryBytes <= 0 {
		o.MaxMemoryBytes = def.MaxMemoryBytes
	}
	return o
}

// Summary counts what a valid fleet repo holds.
type Summary struct {
	Clusters, Designs int
}

// Check validates a fleet repo like Load, without keeping the values: what `meshcd validate`
// and PR checks need. With opts.Worker set, nothing from the repo is evaluated in this process.
func Check(ctx context.Context, fsys fs.FS, opts LoadOptions) (Summary, error) {
	opts = opts.withDefaults()
	files, err := readRepo(fsys, opts)
	if err != nil {
		return Summary{}, err
	}
	if opts.Worker != nil {
		return checkIsolated(ctx, files, opts)
	}
	fleet, designs, err := evaluateWithTimeout(ctx, files, opts.Timeout)
	if err != nil {
		return Summary{}, err
	}
	return Summary{Clusters: len(fleet.Clusters), Designs: len(designs)}, nil
}

// Load reads a fleet repo from fsys (a Git snapshot or a folder), checks every cluster and
// design against the schema and the cross-field rules, and returns them with defaults applied,
// sorted by name. Problems in the repo come back together as a *ValidationError; any other
// error means the repo could not be read or evaluated at all.
func Load(ctx context.Context, fsys fs.FS, opts LoadOptions) (*Fleet, []Design, error) {
	opts = opts.withDefaults()
	files, err := readRepo(fsys, opts)
	if err != nil {
		return nil, nil, err
	}
	if opts.Worker != nil {
		// The worker proves the repo evaluates within budget; doing it again here is as cheap.
		if _, err := checkIsolated(ctx, files, opts); err != nil {
			return nil, nil, err
		}
	}
	return evaluateWithTimeout(ctx, files, opts.Timeout)
}

func evaluateWithTimeout(ctx context.Context, files []sourceFile, timeout time.Duration) (*Fleet, []Design, error) {
	type result struct {
		fleet   *Fleet
		designs []Design
		err     error
	}
	done := make(chan result, 1)
	go func() {
		f, d, err := evaluateRecovering(files)
		done <- result{f, d, err}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.fleet, r.designs, r.err
	case <-timer.C:
		return nil, nil, budgetError(fmt.Sprintf("evaluation took longer than %s: look for recursive or exponentially large definitions", timeout))
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
}

// evaluateRecovering turns a panic inside the evaluator (a bug there) into an error, so that it
// costs one evaluation, never the daemon.
func evaluateRecovering(files []sourceFile) (fleet *Fleet, designs []Design, err error) {
	defer func() {
		if r := recover(); r != nil {
			fleet, designs, err = nil, nil, fmt.Errorf("evaluating the fleet repo failed: %v", r)
		}
	}()
	return evaluate(files)
}

// checkIsolated evaluates the files in opts.Worker; the repo's problems come back as a
// *ValidationError.
func checkIsolated(ctx context.Context, files []sourceFile, opts LoadOptions) (Summary, error) {
	resp, err := evaluateIsolated(ctx, opts.Worker, files, opts)
	if err != nil {
		return Summary{}, err
	}
	if len(resp.Issues) > 0 {
		return Summary{}, &ValidationError{Issues: resp.Issues}
	}
	return Summary{Clusters: resp.Clusters, Designs: resp.Designs}, nil
}
