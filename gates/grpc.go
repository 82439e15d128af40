package gates

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"fortio.org/fortio/fgrpc"
	"fortio.org/fortio/periodic"
	"github.com/meshcd/meshcd/schema"
	grpcmd "google.golang.org/grpc/metadata"
)

// grpcURL names a gRPC gate's target the way the policy and the status files name targets.
func grpcURL(g *schema.GRPC) string { return "grpc://" + g.Target }

// runGRPC sends the gate's load to a gRPC server with fortio's fgrpc: its health service,
// fortio's ping service, or a unary method called through the server's reflection. A call
// that does not answer SERVING (or fails) counts against the error budget like an HTTP error.
func runGRPC(ctx context.Context, g schema.Gate, t Target) (*Result, error) {
	name := t.Design + "/" + t.Gate
	if g.Load.Warmup != nil && g.Load.Warmup.Duration > 0 {
		warm := g
		warm.Load.Requests, warm.Load.Duration = 0, g.Load.Warmup
		if _, _, err := loadGRPC(ctx, warm, t, nil); err != nil {
			return nil, fmt.Errorf("gate %s: warm-up: %w", name, err)
		}
	}
	start := time.Now()
	res, reason, err := loadGRPC(ctx, g, t, newBudget(g))
	if err != nil {
		return nil, fmt.Errorf("gate %s: %w", name, err)
	}
	var failed int64
	codes := map[string]int64{}
	for status, n := range res.RetCodes {
		codes[status] += n
		if status != "SERVING" {
			failed += n
		}
	}
	out := runResult(&res.RunnerResults, codes, failed, start, time.Now())
	out.Name = name
	out.Target = TargetInfo{URL: grpcURL(g.GRPC), Cluster: t.Cluster, Design: t.Design, Gate: t.Gate, Revision: t.Revision, Digest: t.Digest, Spec: t.Spec}
	out.Aborted = reason
	if ctx.Err() != nil && reason == "" {
		out.Aborted = "cancelled: " + ctx.Err().Error()
	}
	return out, nil
}

// loadGRPC runs one fgrpc load; reason says why it stopped early, if it did.
func loadGRPC(ctx context.Context, g schema.Gate, t Target, budget *errorBudget) (*fgrpc.GRPCRunnerResults, string, error) {
	spec := g.GRPC
	o := &fgrpc.GRPCRunnerOptions{Destination: spec.Target, Service: spec.Service, UsePing: spec.Ping, GrpcMethod: spec.Method, Payload: spec.Payload}
	host, port, err := net.SplitHostPort(spec.Target)
	if err != nil {
		return nil, "", fmt.Errorf("grpc.target %q: %w", spec.Target, err)
	}
	if pin := t.Pinned[host]; pin.IsValid() {
		// Connect to the address the policy checked, and still name the host to the server.
		o.Destination = net.JoinHostPort(pin.String(), port)
		o.CertOverride = host
		o.Metadata = grpcmd.Pairs("authority", spec.Target)
	}
	if !spec.TLS {
		o.Destination = "http://" + o.Destination // fortio's way of saying plaintext
	} else {
		o.Destination = "https://" + o.Destination
	}
	o.QPS = g.Load.QPS
	if o.QPS <= 0 {
		o.QPS = -1
	}
	o.NumThreads = max(1, g.Load.Connections)
	if g.Load.Duration != nil {
		o.Duration = g.Load.Duration.Duration
	}
	if g.Load.Requests > 0 {
		o.Exactly = int64(g.Load.Requests)
	}
	o.Percentiles = []float64{50, 75, 90, 99, 99.9}
	o.Resolution = resolution
	o.Out = io.Discard
	o.AllowInitialErrors = true
	aborter := periodic.NewAborter()
	o.Stop = aborter
	if budget != nil {
		budget.stop = aborter
		o.AccessLogger = budget
	}
	quietFortio.Do(quiet)
	stop := context.AfterFunc(ctx, func() { aborter.Abort(false) })
	defer stop()
	res, err := fgrpc.RunGRPCTest(o)
	if err != nil {
		return nil, "", err
	}
	if budget != nil {
		return res, budget.reason(), nil
	}
	return res, "", nil
}
