package daemon

import (
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/meshcd/meshcd/fleet"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaderElection makes replicas of one shard take turns: each shard holds a Lease in
// meshcd's home cluster, and only its holder polls, syncs and commits.
type LeaderElection struct {
	fleet.Credentials
	Namespace string `json:"namespace"`
	// LeaseDuration is how long a dead leader's Lease blocks the others ("15s").
	LeaseDuration string `json:"leaseDuration,omitempty"`
}

func (l LeaderElection) duration() time.Duration {
	if d, err := time.ParseDuration(l.LeaseDuration); err == nil && d > 0 {
		return d
	}
	return 15 * time.Second
}

// Shard is this replica's part of the fleet: the clusters whose name hashes to ID.
type Shard struct {
	ID, Of int
}

// Owns reports whether the cluster belongs to the shard: a stable hash of its name, so every
// replica agrees without talking to the others.
func (s Shard) Owns(cluster string) bool {
	if s.Of <= 1 {
		return true
	}
	h := fnv.New32a()
	h.Write([]byte(cluster))
	return int(h.Sum32()%uint32(s.Of)) == s.ID
}

// ParseShardID reads --shard-id: a number, or "auto" for the StatefulSet ordinal at the end
// of the pod's name (POD_NAME, else the host name).
func ParseShardID(s string, shards int) (int, error) {
	if s == "auto" {
		name := os.Getenv("POD_NAME")
		if name == "" {
			name, _ = os.Hostname()
		}
		i := strings.LastIndex(name, "-")
		n, err := strconv.Atoi(name[i+1:])
		if err != nil {
			if shards <= 1 {
				return 0, nil
			}
			return 0, fmt.Errorf("--shard-id auto: %q does not end in a StatefulSet ordinal", name)
		}
		s = strconv.Itoa(n)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n >= max(shards, 1) {
		return 0, fmt.Errorf("--shard-id %q: want 0 to %d or auto", s, max(shards, 1)-1)
	}
	return n, nil
}

// lead runs work only while this replica holds its shard's Lease, and releases the Lease when
// ctx ends so a successor need not wait for it to expire. client-go's elector returns when a
// term ends without waiting for OnStartedLeading to return, so a new term here starts only
// after the old term's work has returned: two terms never act at once.
func (d *Daemon) lead(ctx context.Context, work func(context.Context)) error {
	le := d.cfg.LeaderElection
	rest, err := le.RESTConfig(ctx, "leader-election", nil)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(rest)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	identity := fmt.Sprintf("%s-%d", host, os.Getpid())
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metaFor(fmt.Sprintf("meshcd-shard-%d", d.shard.ID), le.Namespace),
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: identity},
	}
	dur := le.duration()
	// The elector calls OnStartedLeading in a goroutine of its own and does not wait for it,
	// so the term's work runs here instead, one term after another.
	started := make(chan context.Context, 1)
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: lock, LeaseDuration: dur, RenewDeadline: dur * 2 / 3, RetryPeriod: dur / 5,
		Name: lock.LeaseMeta.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				d.log.Info("leading", "lease", le.Namespace+"/"+lock.LeaseMeta.Name, "identity", identity)
				started <- ctx
			},
			OnStoppedLeading: func() { d.log.Info("not leading", "identity", identity) },
		},
	})
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		ran := make(chan struct{})
		go func() {
			defer close(ran)
			elector.Run(ctx) // returns when leadership is lost
		}()
		select {
		case term := <-started:
			work(term) // until the term's context ends: the Lease lost, or ctx
		case <-ran:
		}
		<-ran
	}
	// Released only now that the work has returned, so a successor never overlaps it.
	release(lock, identity, d)
	return nil
}

func metaFor(name, namespace string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: namespace}
}

// release gives the Lease up if this replica still holds it, as client-go's ReleaseOnCancel
// would, but after the work of the last term has returned rather than as soon as ctx ends.
func release(lock *resourcelock.LeaseLock, identity string, d *Daemon) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rec, _, err := lock.Get(ctx)
	if err != nil || rec.HolderIdentity != identity {
		return
	}
	now := metav1.NewTime(time.Now())
	if err := lock.Update(ctx, resourcelock.LeaderElectionRecord{LeaderTransitions: rec.LeaderTransitions, LeaseDurationSeconds: 1, RenewTime: now, AcquireTime: now}); err != nil {
		d.log.Error("releasing the Lease", "err", err)
	}
}
