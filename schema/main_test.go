package schema

import (
	"os"
	"testing"
)

// TestMain lets this test binary serve as the evaluation worker for tests that isolate.
func TestMain(m *testing.M) {
	ServeWorkerIfRequested()
	os.Exit(m.Run())
}

// testWorker re-executes this test binary as the evaluation worker.
func testWorker(t testing.TB) *Worker {
	t.Helper()
	w, err := SelfWorker()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}
