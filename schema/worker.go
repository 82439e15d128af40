package schema

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"runtime/metrics"
	"syscall"
	"time"
)

// workerEnv, set to "1", makes a meshcd process serve one evaluation on stdin/stdout instead of
// running normally. See ServeWorkerIfRequested.
const workerEnv = "MESHCD_SCHEMA_WORKER"

// exitOverMemory is the worker's exit code when its heap passed the memory budget.
const exitOverMemory = 3

// Worker says how to start an evaluation worker: a process that runs this package's
// ServeWorkerIfRequested first thing in main (meshcd itself, or a test binary's TestMain).
// CUE's evaluator cannot be cancelled and can loop without yielding to the Go scheduler, so only
// a separate process can be stopped for sure and kept from exhausting memory.
type Worker struct {
	// Path is the executable; Args are its arguments after the program name.
	Path string
	Args []string
}

// SelfWorker returns a Worker that re-executes the running binary.
func SelfWorker() (*Worker, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding meshcd's own executable for the evaluation worker: %w", err)
	}
	return &Worker{Path: exe}, nil
}

// ServeWorkerIfRequested returns at once unless this process was started as an evaluation
// worker; then it serves the one evaluation it was sent and exits.
func ServeWorkerIfRequested() {
	if os.Getenv(workerEnv) != "1" {
		return
	}
	os.Exit(serveWorker(os.Stdin, os.Stdout))
}

type wireFile struct {
	Path, Owner string
	Data        []byte
}

type workRequest struct {
	Files        []wireFile
	MaxHeapBytes int64
}

type workResponse struct {
	Clusters, Designs int
	Issues            []Issue
	// Err is a failure that is not the repo's fault.
	Err string
}

func serveWorker(in io.Reader, out io.Writer) int {
	var req workRequest
	if err := gob.NewDecoder(in).Decode(&req); err != nil {
		fmt.Fprintln(os.Stderr, "schema worker: reading request:", err)
		return 2
	}
	// The worker lives for one evaluation and its heap is capped, so it can collect less often.
	debug.SetGCPercent(400)
	if req.MaxHeapBytes > 0 {
		debug.SetMemoryLimit(req.MaxHeapBytes)
		go watchHeap(uint64(req.MaxHeapBytes))
	}
	files := make([]sourceFile, len(req.Files))
	for i, f := range req.Files {
		files[i] = sourceFile{path: f.Path, data: f.Data, owner: f.Owner}
	}
	var resp workResponse
	fleet, designs, err := evaluateRecovering(files)
	var verr *ValidationError
	switch {
	case errors.As(err, &verr):
		resp.Issues = verr.Issues
	case err != nil:
		resp.Err = err.Error()
	default:
		resp.Clusters, resp.Designs = len(fleet.Clusters), len(designs)
	}
	if err := gob.NewEncoder(out).Encode(&resp); err != nil {
		fmt.Fprintln(os.Stderr, "schema worker: writing response:", err)
		return 2
	}
	return 0
}

// watchHeap ends the worker as soon as its live heap passes max. It reads runtime/metrics,
// which does not stop the world, so it keeps working while the evaluator allocates.
func watchHeap(max uint64) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	for {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 && sample[0].Value.Uint64() > max {
			os.Exit(exitOverMemory)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// evaluateIsolated runs evaluate in a worker process under opts' time and memory budgets.
// Exceeding either is a *ValidationError: the repo, not meshcd, is at fault.
func evaluateIsolated(ctx context.Context, w *Worker, files []sourceFile, opts LoadOptions) (*workResponse, error) {
	req := workRequest{MaxHeapBytes: opts.MaxMemoryBytes}
	for _, f := range files {
		req.Files = append(req.Files, wireFile{Path: f.path, Owner: f.owner, Data: f.data})
	}
	var stdin, stdout, stderr bytes.Buffer
	if err := gob.NewEncoder(&stdin).Encode(&req); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, w.Path, w.Args...)
	cmd.Env = append(os.Environ(), workerEnv+"=1", fmt.Sprintf("GOMAXPROCS=%d", 2))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = &stdin, &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return nil, budgetError(fmt.Sprintf("evaluation took longer than %s: look for recursive or exponentially large definitions", opts.Timeout))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == exitOverMemory {
		return nil, budgetError(fmt.Sprintf("evaluation needed more than %s of memory: look for recursive or exponentially large definitions", bytesText(opts.MaxMemoryBytes)))
	}
	if err != nil {
		return nil, fmt.Errorf("evaluation worker %s failed: %w: %s", w.Path, err, tailOf(stderr.String(), 2000))
	}
	var resp workResponse
	if err := gob.NewDecoder(&stdout).Decode(&resp); err != nil {
		return nil, fmt.Errorf("evaluation worker %s answered nonsense (does its main call schema.ServeWorkerIfRequested?): %w", w.Path, err)
	}
	if resp.Err != "" {
		return nil, errors.New(resp.Err)
	}
	return &resp, nil
}

func budgetError(msg string) *ValidationError {
	return &ValidationError{Issues: []Issue{{File: ".", Message: msg}}}
}

func tailOf(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
