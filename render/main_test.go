package render

import (
	"os"
	"testing"

	"github.com/meshcd/meshcd/schema"
)

// TestMain lets this test binary serve as the worker process that renders manifests.
func TestMain(m *testing.M) {
	schema.ServeWorkerIfRequested()
	os.Exit(m.Run())
}
