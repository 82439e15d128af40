package gates

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestLoadWorkerMeasuresLikeRun: a load run in the child process measures what an in-process
// run does (the same requests, status codes and a histogram), at a lower CPU priority, and
// cancelling it ends the child at once.
func TestLoadWorkerMeasuresLikeRun(t *testing.T) {
	target := echo(t)
	w, err := SelfLoadWorker()
	if err != nil {
		t.Fatal(err)
	}
	g := gate(target+"/?status=503:10", 200, "1m")
	g.Load.Duration, g.Load.Requests = nil, 200
	res, err := w.Run(t.Context(), g, Target{Design: "d", Gate: "g", Cluster: "c", Revision: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 200 || res.StatusCodes["200"]+res.StatusCodes["503"] != 200 || res.StatusCodes["503"] == 0 || len(res.Histogram) == 0 || res.Target.Revision != "r1" || res.Latencies.P99 <= 0 {
		t.Fatalf("worker result: %+v", res)
	}
	if _, err := Judge(res, g, nil); err != nil {
		t.Fatalf("judging the worker's result: %v", err)
	}

	long := gate(target+"/", 50, "10m")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := w.Run(ctx, long, Target{Design: "d", Gate: "long"})
		done <- err
	}()
	time.Sleep(500 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a cancelled load returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("a cancelled load still ran %s later", time.Since(start))
	}

	bad := &LoadWorker{Path: "/bin/true"}
	if _, err := bad.Run(t.Context(), g, Target{Design: "d", Gate: "g"}); err == nil || !strings.Contains(err.Error(), "ServeLoadIfRequested") {
		t.Fatalf("a binary that is not a load worker: %v", err)
	}
}
