package sources

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/meshcd/meshcd/internal/testenv"
)

// TestFailingServerDelaysOnlyItself: two healthy repos keep being polled on schedule while a
// third, whose server refuses connections, backs off.
func TestFailingServerDelaysOnlyItself(t *testing.T) {
	_, good := gitRepo(t, testenv.GitServerOptions{})
	if _, err := good.Push(t.Context(), "main", map[string][]byte{"a": []byte("1")}, "a"); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + l.Addr().String() + "/gone.git"
	l.Close() // nothing listens there now: connections are refused

	w := NewWatcher(localPoller(t.TempDir()), []Target{
		{Repo: Repo{URL: good.HTTPURL()}, Refs: []string{"main"}},
		{Repo: Repo{URL: deadURL}, Refs: []string{"main"}},
	}, WatchOptions{Interval: 200 * time.Millisecond, MaxBackoff: 5 * time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	updates := make(chan Update, 100)
	go w.Run(ctx, updates)
	okPolls, failedPolls, maxFailures := 0, 0, 0
	for {
		select {
		case u := <-updates:
			if u.Err != nil {
				failedPolls++
				maxFailures = max(maxFailures, u.Failures)
			} else {
				okPolls++
			}
			continue
		case <-ctx.Done():
		}
		break
	}
	// In 3 s at a 200 ms interval the healthy repo is polled about 15 times; the failing one
	// backs off (50, 100, 200, 400, 800, 1600 ms ...) and is polled far less, whatever the load.
	if okPolls <= failedPolls || okPolls < 4 {
		t.Errorf("the healthy repo was polled %d times, the failing one %d: the failing one held it up", okPolls, failedPolls)
	}
	if failedPolls < 2 || failedPolls > 8 || maxFailures != failedPolls {
		t.Errorf("the failing repo was polled %d times (consecutive failures %d): want a few, backing off", failedPolls, maxFailures)
	}
}

func TestTriggerPollsAtOnce(t *testing.T) {
	_, r := gitRepo(t, testenv.GitServerOptions{})
	if _, err := r.Push(t.Context(), "main", map[string][]byte{"a": []byte("1")}, "a"); err != nil {
		t.Fatal(err)
	}
	w := NewWatcher(localPoller(t.TempDir()), []Target{{Repo: Repo{URL: r.HTTPURL()}, Refs: []string{"main"}}},
		WatchOptions{Interval: time.Hour, MaxBackoff: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	updates := make(chan Update, 10)
	go w.Run(ctx, updates)
	<-updates // the first poll
	moved, err := r.Push(t.Context(), "main", map[string][]byte{"a": []byte("2")}, "b")
	if err != nil {
		t.Fatal(err)
	}
	for range 5 { // a burst of webhooks collapses into one pending poll
		w.Trigger(r.HTTPURL())
	}
	select {
	case u := <-updates:
		if u.Err != nil || !u.Results[0].Changed || u.Results[0].Revision != moved {
			t.Fatalf("triggered poll: %+v", u)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Trigger did not poll (the interval is an hour)")
	}
	select {
	case u := <-updates:
		if len(u.Results) > 0 && u.Results[0].Changed {
			t.Fatalf("a second triggered poll reported a change again: %+v", u)
		}
	case <-time.After(2 * time.Second):
	}
	if w.Trigger("https://unknown.example.com/x.git") {
		t.Error("Trigger of a repo nobody watches reported a target")
	}
}
