package gates

import (
	"os"
	"testing"
)

// TestMain lets this test binary serve as the load worker for tests that isolate loads.
func TestMain(m *testing.M) {
	ServeLoadIfRequested()
	os.Exit(m.Run())
}
