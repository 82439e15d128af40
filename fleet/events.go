package fleet

import (
	"context"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
)

// EventController is the reporting controller of meshcd's Kubernetes Events.
const EventController = "meshcd"

// Events returns the cluster's Event recorder (client-go's events.k8s.io recorder), started
// on first use: Events name the object they regard with its UID, so `kubectl describe` shows
// them, and repeats are aggregated into series by the broadcaster. Close stops it.
func (c *Cluster) Events() events.EventRecorder {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.recorder != nil {
		return c.recorder
	}
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return discardEvents{}
	}
	c.broadcaster = events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
	ctx, cancel := context.WithCancel(context.Background())
	c.stopEvents = cancel
	if err := c.broadcaster.StartRecordingToSinkWithContext(ctx); err != nil {
		cancel()
		c.broadcaster = nil
		return discardEvents{}
	}
	c.recorder = c.broadcaster.NewRecorder(scheme.Scheme, EventController)
	return c.recorder
}

// Close stops the cluster's watch cache and Event recorder. Events not yet sent are dropped.
func (c *Cluster) Close() {
	c.Live.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broadcaster != nil {
		c.stopEvents()
		c.broadcaster.Shutdown()
		c.broadcaster, c.recorder = nil, discardEvents{}
	}
}

// discardEvents records nothing: the recorder of a cluster whose client cannot be built, or
// that was closed.
type discardEvents struct{}

func (discardEvents) Eventf(_, _ runtime.Object, _, _, _, _ string, _ ...any) {}
