package gates

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"fortio.org/fortio/fgrpc"
	"fortio.org/fortio/fhttp"
	"github.com/meshcd/meshcd/schema"
)

// TestGRPCGates runs gRPC gates against fortio's own gRPC server: its health service, its
// ping service, and its Ping method called through reflection (with a 5 ms delay in the
// request, which the latency shows) all pass with the same thresholds and status files as an
// HTTP gate; a closed port fails within a bounded time, saying why.
func TestGRPCGates(t *testing.T) {
	port := fgrpc.PingServerTCP("127.0.0.1:0", "", 0, &fhttp.TLSOptions{})
	if port < 0 {
		t.Fatal("fortio's gRPC server did not start")
	}
	target := fmt.Sprintf("127.0.0.1:%d", port)
	for _, tc := range []struct {
		name  string
		grpc  schema.GRPC
		minMs float64
	}{
		{"health", schema.GRPC{Target: target}, 0},
		{"ping", schema.GRPC{Target: target, Ping: true, Payload: "hello"}, 0},
		{"method by reflection", schema.GRPC{Target: target, Method: "fgrpc.PingServer/Ping", Payload: `{"payload": "hi", "delayNanos": 5000000}`}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.grpc
			g := schema.Gate{GRPC: &spec, Load: schema.LoadProfile{QPS: 100, Connections: 2, Duration: dur("1s")}}
			g.Thresholds.P99 = dur("500ms")
			g.Thresholds.ErrorRate = ptr(0.01)
			res, err := Run(t.Context(), g, Target{Design: "api", Gate: "grpc", Cluster: "east", Revision: "r1"})
			if err != nil {
				t.Fatal(err)
			}
			v, err := Judge(res, g, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !v.Pass || res.Requests < 50 || res.StatusCodes["SERVING"] != int(res.Requests) || res.Latencies.P50 < tc.minMs {
				t.Fatalf("%s: %d requests, codes %v, p50 %v ms:\n%s", tc.name, res.Requests, res.StatusCodes, res.Latencies.P50, v)
			}
			if res.Target.URL != "grpc://"+target {
				t.Errorf("target %q", res.Target.URL)
			}
			if _, err := Files(res, v, nil); err != nil {
				t.Fatal(err)
			}
		})
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	g := schema.Gate{GRPC: &schema.GRPC{Target: closed}, Load: schema.LoadProfile{QPS: 50, Connections: 2, Duration: dur("30s")}}
	g.Thresholds.ErrorRate = ptr(0.01)
	start := time.Now()
	res, err := Run(t.Context(), g, Target{Design: "api", Gate: "grpc"})
	took := time.Since(start)
	if res != nil {
		t.Logf("closed port: stopped after %s: %s", took.Round(time.Millisecond), res.Aborted)
	} else {
		t.Logf("closed port: failed after %s: %v", took.Round(time.Millisecond), err)
	}
	if err == nil {
		var v Verdict
		v, _ = Judge(res, g, nil)
		if v.Pass || !strings.Contains(res.Aborted, "failing") {
			t.Fatalf("a closed port: aborted %q, verdict:\n%s", res.Aborted, v)
		}
	} else if !strings.Contains(err.Error(), closed) && !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("a closed port: %v", err)
	}
	if took > 10*time.Second {
		t.Fatalf("a closed port took %s to fail", took)
	}
}
