package daemon

import (
	"sync"

	"github.com/meshcd/meshcd/reconciler"
)

// The events a repo controller's inbox carries.
type (
	syncDone struct {
		key, revision string
		res           *reconciler.SyncResult
		final         bool
	}
	gateDone struct {
		key string
		run *gateRun
		out gateOutcome
	}
	cronFired    struct{ design, gate string }
	driftChanged struct{}
	// gateLoading wakes the loop to publish that a gate run got its slots.
	gateLoading struct{}
	// recheck syncs a job again whose objects were applied but not yet healthy: an unchanged
	// bundle costs no request, and the sync reads health anew from the watch cache.
	recheck struct{ key, revision string }
	// prState is the host saying a pull request closed (or merged) or reopened, by webhook
	// or, for one the previewer found closed, by its API.
	prState struct {
		ref    string
		closed bool
	}
)

// inbox is a controller's mailbox: put never blocks, and a burst of drift notices counts once.
type inbox struct {
	mu     sync.Mutex
	events []any
	drift  bool
	wake   chan struct{}
}

func (b *inbox) put(ev any) {
	b.mu.Lock()
	if _, ok := ev.(driftChanged); ok {
		b.drift = true
	} else {
		b.events = append(b.events, ev)
	}
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *inbox) take() ([]any, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	evs, drifted := b.events, b.drift
	b.events, b.drift = nil, false
	return evs, drifted
}
