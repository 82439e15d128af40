package gates

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"

	"github.com/meshcd/meshcd/schema"
)

// loadWorkerEnv, set to "1", makes a meshcd process run one gate load from stdin and write
// its result to stdout instead of running normally. See ServeLoadIfRequested.
const loadWorkerEnv = "MESHCD_GATE_WORKER"

// LoadWorker runs gate loads in a child process: meshcd re-executed, at a lower CPU
// priority. A load's connections, goroutines and garbage then live outside the daemon, so a
// gate that loads for minutes neither slows the daemon's syncs (its scheduler and garbage
// collector see none of it) nor grows its heap, and cancelling a run is killing a process.
type LoadWorker struct {
	// Path is the executable; Args are its arguments after the program name.
	Path string
	Args []string
	// Nice is added to the child's CPU niceness (default 10; 0 keeps the daemon's).
	Nice int
}

// SelfLoadWorker returns a LoadWorker that re-executes the running binary, whose main must
// call ServeLoadIfRequested first.
func SelfLoadWorker() (*LoadWorker, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding meshcd's own executable for gate loads: %w", err)
	}
	return &LoadWorker{Path: exe, Nice: 10}, nil
}

type loadRequest struct {
	Gate   schema.Gate
	Target Target
}

type loadResponse struct {
	Result *Result `json:",omitempty"`
	Err    string  `json:",omitempty"`
}

// Run runs the gate's load like Run, in a child process. Cancelling ctx kills the child.
func (w *LoadWorker) Run(ctx context.Context, g schema.Gate, t Target) (*Result, error) {
	req, err := json.Marshal(loadRequest{Gate: g, Target: t})
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(w.Path, w.Args...)
	cmd.Env = append(os.Environ(), loadWorkerEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stdin = bytes.NewReader(req)
	var stdout bytes.Buffer
	stderr := &tailWriter{max: 2000}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("gate %s/%s: starting the load worker %s: %w", t.Design, t.Gate, w.Path, err)
	}
	if w.Nice != 0 {
		// Best effort: a process may not be allowed to lower a child's priority further.
		_ = syscall.Setpriority(syscall.PRIO_PROCESS, cmd.Process.Pid, w.Nice)
	}
	stop := context.AfterFunc(ctx, func() { _ = cmd.Process.Kill() })
	err = cmd.Wait()
	stop()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("gate %s/%s: the load worker failed (does its main call gates.ServeLoadIfRequested?): %w: %s", t.Design, t.Gate, err, stderr)
	}
	var resp loadResponse
	if err := json.Unmarshal(stdout.Bytes(), &resp); err != nil {
		return nil, fmt.Errorf("gate %s/%s: the load worker %s gave no result (does its main call gates.ServeLoadIfRequested?): %w: %s", t.Design, t.Gate, w.Path, err, stderr)
	}
	if resp.Err != "" {
		return nil, errors.New(resp.Err)
	}
	return resp.Result, nil
}

// ServeLoadIfRequested returns at once unless this process was started as a load worker;
// then it runs the one load it was sent and exits.
func ServeLoadIfRequested() {
	if os.Getenv(loadWorkerEnv) != "1" {
		return
	}
	os.Exit(serveLoad(os.Stdin, os.Stdout))
}

func serveLoad(in io.Reader, out io.Writer) int {
	var req loadRequest
	if err := json.NewDecoder(in).Decode(&req); err != nil {
		fmt.Fprintln(os.Stderr, "gate load worker: reading request:", err)
		return 2
	}
	var resp loadResponse
	res, err := Run(context.Background(), req.Gate, req.Target)
	if err != nil {
		resp.Err = err.Error()
	} else {
		resp.Result = res
	}
	if err := json.NewEncoder(out).Encode(resp); err != nil {
		fmt.Fprintln(os.Stderr, "gate load worker: writing result:", err)
		return 2
	}
	return 0
}

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	max int
	buf []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tailWriter) String() string { return string(t.buf) }
