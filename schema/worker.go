package schema

import (
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/meshcd/meshcd/internal/race"
	"golang.org/x/sys/unix"
)

// workerEnv, set to "1", makes a meshcd process serve one evaluation on stdin/stdout instead of
// running normally. See ServeWorkerIfRequested.
const workerEnv = "MESHCD_SCHEMA_WORKER"

// exitOverMemory is the worker's exit code when its heap passed the memory budget.
const exitOverMemory = 3

// DefaultAddressSpaceBytes is a worker's address-space limit: a Go binary of meshcd's size
// maps about 1.7 GiB before it does anything, and the heap budget (1 GiB) comes on top.
const DefaultAddressSpaceBytes = 4 << 30

// Worker says how to start an evaluation worker: a process that runs this package's
// ServeWorkerIfRequested first thing in main (meshcd itself, or a test binary's TestMain).
// CUE's evaluator cannot be cancelled and can loop without yielding to the Go scheduler, so only
// a separate process can be stopped for sure and kept from exhausting memory. The process
// stays alive between evaluations, so a daemon pays for its start once; one that ran over a
// budget, crashed or was cancelled is killed and the next evaluation starts a new one.
type Worker struct {
	// Path is the executable; Args are its arguments after the program name.
	Path string
	Args []string
	// AddressSpaceBytes is the kernel's limit on the worker's address space (RLIMIT_AS), the
	// backstop behind the heap budget: memory the Go heap watch does not see (stacks, a
	// runaway allocation between two looks) stops the process too. 0 means
	// DefaultAddressSpaceBytes, negative none. A race-built worker runs without one.
	AddressSpaceBytes int64

	mu     sync.Mutex
	proc   *workerProc
	starts int
}

// workerProc is a running worker and the two ends of its request stream.
type workerProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	enc    *gob.Encoder
	dec    *gob.Decoder
	stderr *tailWriter
	done   chan struct{} // closed once the process has exited
}

// Starts is how many worker processes this Worker has started.
func (w *Worker) Starts() int {
	if w == nil {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.starts
}

// Close stops the worker process, if one runs.
func (w *Worker) Close() {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.kill()
}

func (w *Worker) kill() {
	if w.proc == nil {
		return
	}
	_ = w.proc.stdin.Close()
	_ = w.proc.cmd.Process.Kill()
	<-w.proc.done
	w.proc = nil
}

func (w *Worker) start() error {
	cmd := exec.Command(w.Path, w.Args...)
	cmd.Env = append(os.Environ(), workerEnv+"=1", fmt.Sprintf("GOMAXPROCS=%d", 2))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	p := &workerProc{cmd: cmd, stdin: stdin, enc: gob.NewEncoder(stdin), dec: gob.NewDecoder(stdout), stderr: &tailWriter{max: 4000}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the evaluation worker %s: %w", w.Path, err)
	}
	if limit := w.AddressSpaceBytes; limit >= 0 && !race.Enabled {
		if limit == 0 {
			limit = DefaultAddressSpaceBytes
		}
		// The child runs a moment without it: it only reads its first request meanwhile.
		rl := &unix.Rlimit{Cur: uint64(limit), Max: uint64(limit)}
		if err := unix.Prlimit(cmd.Process.Pid, unix.RLIMIT_AS, rl, nil); err != nil {
			_ = cmd.Process.Kill()
			return fmt.Errorf("limiting the evaluation worker's memory: %w", err)
		}
	}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	w.proc, w.starts = p, w.starts+1
	return nil
}

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tailWriter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
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
	// Kind names a job registered with RegisterJob; "" checks Files as a fleet repo.
	Kind         string
	Payload      []byte
	Files        []wireFile
	MaxHeapBytes int64
}

type workResponse struct {
	Clusters, Designs int
	Issues            []Issue
	// Payload is a registered job's answer.
	Payload []byte
	// Err is a failure that is not the repo's fault.
	Err string
}

// jobs are the kinds of work a worker process does besides checking a fleet repo, by name.
// Packages that evaluate untrusted content (render: Helm, Kustomize) register theirs at init,
// so any binary that links them can serve them.
var jobs = map[string]func(payload []byte) ([]byte, error){}

// RegisterJob makes kind a job a worker process can run: fn gets the request's payload and
// returns the answer's. It runs under the worker's time and memory budgets. Call it from an
// init function.
func RegisterJob(kind string, fn func(payload []byte) ([]byte, error)) { jobs[kind] = fn }

// BudgetError is work stopped for exceeding the worker's time or memory budget: the input's
// fault, and final.
type BudgetError struct{ Message string }

func (e *BudgetError) Error() string { return e.Message }

// Run runs a registered job in the worker process, under the timeout and (when maxHeap > 0)
// a heap budget. A job over either ends with a *BudgetError; the worker that ran it is
// replaced by the next call.
func (w *Worker) Run(ctx context.Context, kind string, payload []byte, timeout time.Duration, maxHeap int64) ([]byte, error) {
	resp, err := w.roundTrip(ctx, workRequest{Kind: kind, Payload: payload, MaxHeapBytes: maxHeap}, timeout, kind)
	if err != nil {
		var verr *ValidationError
		if errors.As(err, &verr) && len(verr.Issues) == 1 {
			return nil, &BudgetError{Message: verr.Issues[0].Message}
		}
		return nil, err
	}
	return resp.Payload, nil
}

// serveWorker answers evaluation requests until its input ends.
func serveWorker(in io.Reader, out io.Writer) int {
	dec, enc := gob.NewDecoder(in), gob.NewEncoder(out)
	// Its heap is capped and returned after every evaluation, so it can collect less often.
	debug.SetGCPercent(400)
	for {
		var req workRequest
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return 0
			}
			fmt.Fprintln(os.Stderr, "schema worker: reading request:", err)
			return 2
		}
		// The heap is watched only while an evaluation runs: an idle worker (one per repo in a
		// daemon) must cost no CPU.
		stop := make(chan struct{})
		if req.MaxHeapBytes > 0 {
			debug.SetMemoryLimit(req.MaxHeapBytes)
			go watchHeap(uint64(req.MaxHeapBytes), stop)
		}
		resp := serveOne(req)
		close(stop)
		if err := enc.Encode(&resp); err != nil {
			fmt.Fprintln(os.Stderr, "schema worker: writing response:", err)
			return 2
		}
		// What this evaluation allocated must not count against the next one's budget.
		debug.FreeOSMemory()
	}
}

func serveOne(req workRequest) (resp workResponse) {
	if req.Kind != "" {
		fn, ok := jobs[req.Kind]
		if !ok {
			return workResponse{Err: fmt.Sprintf("this worker binary has no job %q", req.Kind)}
		}
		defer func() {
			if r := recover(); r != nil {
				resp = workResponse{Err: fmt.Sprintf("job %s failed: %v", req.Kind, r)}
			}
		}()
		out, err := fn(req.Payload)
		if err != nil {
			return workResponse{Err: err.Error()}
		}
		return workResponse{Payload: out}
	}
	files := make([]sourceFile, len(req.Files))
	for i, f := range req.Files {
		files[i] = sourceFile{path: f.Path, data: f.Data, owner: f.Owner}
	}
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
	return resp
}

// watchHeap ends the worker as soon as its live heap passes max, until stop is closed. It
// reads runtime/metrics, which does not stop the world, so it keeps working while the
// evaluator allocates.
func watchHeap(max uint64, stop <-chan struct{}) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 && sample[0].Value.Uint64() > max {
			os.Exit(exitOverMemory)
		}
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// evaluateIsolated runs evaluate in a worker process under opts' time and memory budgets.
// Exceeding either is a *ValidationError: the repo, not meshcd, is at fault.
func evaluateIsolated(ctx context.Context, w *Worker, files []sourceFile, opts LoadOptions) (*workResponse, error) {
	req := workRequest{MaxHeapBytes: opts.MaxMemoryBytes}
	for _, f := range files {
		req.Files = append(req.Files, wireFile{Path: f.path, Owner: f.owner, Data: f.data})
	}
	resp, err := w.roundTrip(ctx, req, opts.Timeout, "evaluation")
	if err != nil {
		return nil, err
	}
	return &resp, nil
}

// roundTrip sends one request to the worker process (starting one if none runs) and waits
// for its answer, the timeout or ctx. what names the work in budget errors.
func (w *Worker) roundTrip(ctx context.Context, req workRequest, timeout time.Duration, what string) (workResponse, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.proc == nil {
		if err := w.start(); err != nil {
			return workResponse{}, err
		}
	}
	p := w.proc
	type answer struct {
		resp workResponse
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		var a answer
		if a.err = p.enc.Encode(&req); a.err == nil {
			a.err = p.dec.Decode(&a.resp)
		}
		answered <- a
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case a := <-answered:
		if a.err != nil {
			// The worker died mid-evaluation: over its memory budget, or a crash.
			_ = p.cmd.Process.Kill()
			<-p.done
			w.proc = nil
			if st := p.cmd.ProcessState; st != nil && (st.ExitCode() == exitOverMemory || outOfAddressSpace(p.stderr.String())) {
				return workResponse{}, budgetError(fmt.Sprintf("%s needed more than %s of memory: look for recursive or exponentially large definitions", what, bytesText(req.MaxHeapBytes)))
			}
			return workResponse{}, fmt.Errorf("evaluation worker %s failed (does its main call schema.ServeWorkerIfRequested?): %w: %s", w.Path, a.err, tailOf(p.stderr.String(), 2000))
		}
		if a.resp.Err != "" {
			return workResponse{}, errors.New(a.resp.Err)
		}
		return a.resp, nil
	case <-timer.C:
		w.kill()
		return workResponse{}, budgetError(fmt.Sprintf("%s took longer than %s: look for recursive or exponentially large definitions", what, timeout))
	case <-ctx.Done():
		// The answer would arrive on a stream nobody reads: the worker goes with it.
		w.kill()
		return workResponse{}, ctx.Err()
	}
}

// outOfAddressSpace is a Go runtime that could not map more memory: the kernel's address
// space limit on the worker (RLIMIT_AS) stopped it.
func outOfAddressSpace(stderr string) bool {
	return strings.Contains(stderr, "out of memory") || strings.Contains(stderr, "cannot allocate memory")
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
