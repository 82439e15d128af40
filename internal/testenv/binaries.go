package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// BinDirEnv names the environment variable that points at the folder holding the etcd and
// kube-apiserver binaries built by `make testbin`. When it is unset, testenv looks for bin/testbin
// at the root of the meshcd module that contains the working directory.
const BinDirEnv = "MESHCD_TESTBIN"

type binaries struct{ etcd, apiserver string }

func findBinaries(dir string) (binaries, error) {
	dir, err := binDir(dir)
	if err != nil {
		return binaries{}, err
	}
	b := binaries{etcd: filepath.Join(dir, "etcd"), apiserver: filepath.Join(dir, "kube-apiserver")}
	for _, p := range []string{b.etcd, b.apiserver} {
		if _, err := os.Stat(p); err != nil {
			return binaries{}, fmt.Errorf("test binary %s is missing: run `make testbin` (or set %s): %w", p, BinDirEnv, err)
		}
	}
	return b, nil
}

// moduleRoot walks up from the working directory to the meshcd module's go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(data), "module github.com/meshcd/meshcd\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no meshcd go.mod above the working directory: set %s", BinDirEnv)
		}
		dir = parent
	}
}

// binDir is the folder of the binaries make testbin builds: dir if given, else $MESHCD_TESTBIN,
// else bin/testbin at the root of the meshcd module.
func binDir(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv(BinDirEnv)
	}
	if dir == "" {
		root, err := moduleRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, "bin", "testbin")
	}
	return dir, nil
}

// moduleDir is where the Go module cache holds module@version, downloading it from the module
// proxy when it is not there yet.
func moduleDir(ctx context.Context, moduleAtVersion string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "mod", "download", "-json", moduleAtVersion).Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s: %w", moduleAtVersion, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return "", fmt.Errorf("go mod download %s: no module folder (%v)", moduleAtVersion, err)
	}
	return mod.Dir, nil
}

// ContourModule is the folder of the Contour module the test clusters' CRDs and the test
// Contour come from (the pin in hack/crds.sh), downloaded by the Go module proxy if need be:
// its examples and documentation's samples are other tests' input.
func ContourModule(ctx context.Context) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(filepath.Join(root, "hack", "crds.sh"))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if mod, ok := strings.CutPrefix(line, "CONTOUR="); ok {
			return moduleDir(ctx, mod)
		}
	}
	return "", fmt.Errorf("hack/crds.sh pins no CONTOUR module")
}
