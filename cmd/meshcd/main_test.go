package main

import (
	"os"
	"testing"

	"github.com/meshcd/meshcd/gates"
	"github.com/meshcd/meshcd/schema"
)

// TestMain lets this test binary serve as meshcd's evaluation worker, as meshcd's main does.
func TestMain(m *testing.M) {
	schema.ServeWorkerIfRequested()
	gates.ServeLoadIfRequested()
	os.Exit(m.Run())
}
