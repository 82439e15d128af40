// Command leftovers is the end of `make test`: it reports, and kills, every etcd and
// kube-apiserver that this test run started (recorded in $MESHCD_TEST_PIDS) and that still
// runs. Clusters started beside the run are not in the folder, so they are left alone.
package main

import (
	"fmt"
	"os"

	"github.com/meshcd/meshcd/internal/testenv"
)

func main() {
	dir := os.Getenv(testenv.PIDsEnv)
	if dir == "" {
		fmt.Fprintln(os.Stderr, "leftovers: set", testenv.PIDsEnv, "to the test run's PID folder")
		os.Exit(2)
	}
	left, err := testenv.Leftovers(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "leftovers:", err)
		os.Exit(2)
	}
	if len(left) == 0 {
		fmt.Println("ok: no test cluster process of this run left running")
		return
	}
	fmt.Println("FAIL: processes started by the tests are still running:")
	for _, l := range left {
		fmt.Println("  ", l)
	}
	testenv.Kill(left)
	os.Exit(1)
}
