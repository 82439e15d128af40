package reconciler

import (
	"context"
	"time"

	"github.com/meshcd/meshcd/fleet"
	"github.com/meshcd/meshcd/render"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// Health is the status of a bundle's objects in one cluster: the worst status of any object,
// and every object that is not Current with the reason. Routes and proxies are judged by their
// controllers' verdicts (verdict.go), everything else by kstatus.
type Health struct {
	Status   string         `json:"status"`
	NotReady []ObjectStatus `json:"notReady,omitempty"`
}

// ObjectStatus is one object's kstatus.
type ObjectStatus struct {
	Object  string `json:"object"`
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

// rank orders statuses from best to worst, so a bundle's health is its worst object's.
var rank = map[status.Status]int{
	status.CurrentStatus: 0, status.InProgressStatus: 1, status.TerminatingStatus: 2,
	status.UnknownStatus: 3, status.NotFoundStatus: 4, status.FailedStatus: 5,
}

// rejectionSettles is how long a wait goes on once every object that is not Current has been
// Failed throughout (a controller's rejection, say): long enough for a sibling design applied
// at the same moment to supply what was missing, short enough not to sit out the timeout.
const rejectionSettles = 5 * time.Second

// health computes the bundle's health from the watch cache, waiting up to opts.HealthTimeout
// for all to be Current when opts.Wait is set. A wait ends early when the only objects not
// Current have stayed Failed for rejectionSettles, as Flux's fail-fast does.
func (r *Reconciler) health(ctx context.Context, c *fleet.Cluster, b *render.Bundle, opts SyncOptions) Health {
	h := Compute(c, b)
	if !opts.Wait {
		return h
	}
	deadline := time.Now().Add(opts.HealthTimeout)
	var failedSince time.Time
	for h.Status != string(status.CurrentStatus) && time.Now().Before(deadline) && ctx.Err() == nil {
		if !onlyFailed(h) {
			failedSince = time.Time{}
		} else if failedSince.IsZero() {
			failedSince = time.Now()
		} else if time.Since(failedSince) >= rejectionSettles {
			break
		}
		time.Sleep(100 * time.Millisecond)
		h = Compute(c, b)
	}
	return h
}

// onlyFailed reports whether every object that is not Current is Failed.
func onlyFailed(h Health) bool {
	for _, o := range h.NotReady {
		if o.Status != string(status.FailedStatus) {
			return false
		}
	}
	return len(h.NotReady) > 0
}

// Compute returns the bundle's health as the cluster's watch cache shows it, with no request.
func Compute(c *fleet.Cluster, b *render.Bundle) Health {
	worst := status.CurrentStatus
	var notReady []ObjectStatus
	for _, o := range b.Objects {
		id := render.ObjectID(o)
		st, msg := status.NotFoundStatus, "not in the cluster"
		if live, ok := c.Live.Get(o.GroupVersionKind(), o.GetNamespace(), o.GetName()); ok {
			if vst, vmsg, judged := verdict(live); judged {
				st, msg = vst, vmsg
			} else if r, err := status.Compute(live); err != nil {
				st, msg = status.UnknownStatus, err.Error()
			} else {
				st, msg = r.Status, r.Message
			}
		}
		if st != status.CurrentStatus {
			notReady = append(notReady, ObjectStatus{Object: id, Status: st.String(), Message: msg})
		}
		if rank[st] > rank[worst] {
			worst = st
		}
	}
	return Health{Status: worst.String(), NotReady: notReady}
}
