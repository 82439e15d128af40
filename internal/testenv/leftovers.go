package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// PIDsEnv names a folder where testenv records every etcd and kube-apiserver it starts, one
// file per process. `make test` sets it for its run and afterwards checks only those: clusters
// someone started beside it (`make clusters`, another checkout) are never blamed or killed.
const PIDsEnv = "MESHCD_TEST_PIDS"

// record notes a started process in the run's PID folder, if there is one.
func record(pid int, bin string) {
	dir := os.Getenv(PIDsEnv)
	if dir == "" {
		return
	}
	_ = os.WriteFile(filepath.Join(dir, strconv.Itoa(pid)), []byte(bin), 0o644)
}

// Leftover is a process a test run started that still runs.
type Leftover struct {
	PID     int
	Command string
}

func (l Leftover) String() string { return fmt.Sprintf("%d %s", l.PID, l.Command) }

// Leftovers lists the processes recorded in dir that still run the binary they were started
// with (a PID reused by another program since is not one of them).
func Leftovers(dir string) ([]Leftover, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []Leftover
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		bin, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil || !Alive(pid) {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if len(args) == 0 || args[0] != string(bin) {
			continue
		}
		out = append(out, Leftover{PID: pid, Command: strings.Join(args, " ")})
	}
	slices.SortFunc(out, func(a, b Leftover) int { return a.PID - b.PID })
	return out, nil
}

// Kill ends leftovers with SIGKILL.
func Kill(ls []Leftover) {
	for _, l := range ls {
		_ = syscall.Kill(l.PID, syscall.SIGKILL)
	}
}
