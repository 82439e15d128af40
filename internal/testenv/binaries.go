package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// BinDirEnv names the environment variable that points at the folder holding the etcd and
// kube-apiserver binaries built by `make testbin`. When it is unset, testenv looks for bin/testbin
// at the root of the meshcd module that contains the working directory.
const BinDirEnv = "MESHCD_TESTBIN"

type binaries struct{ etcd, apiserver string }

func findBinaries(dir string) (binaries, error) {
	if dir == "" {
		dir = os.Getenv(BinDirEnv)
	}
	if dir == "" {
		root, err := moduleRoot()
		if err != nil {
			return binaries{}, err
		}
		dir = filepath.Join(root, "bin", "testbin")
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
