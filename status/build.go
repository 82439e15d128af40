package status

import (
	"fmt"
	"maps"
	"slices"

	"github.com/meshcd/meshcd/drift"
	"github.com/meshcd/meshcd/reconciler"
)

// LedgerSize caps the drift entries kept per design and cluster in status/drift/.
const LedgerSize = 200

// Snapshot is everything one repo's status files say, as a value its owner hands over: the
// builder keeps no reference to it.
type Snapshot struct {
	// Syncs are one per design and cluster; their Drift and Gates are filled by Files.
	Syncs []Sync
	// Drift holds each design's drift ledger per cluster, keyed "cluster/design".
	Drift map[string][]drift.Entry
	// Gates are the latest verdicts, keyed "design/gate/cluster".
	Gates map[string]Gate
	// GateFiles are the gate result files as last written.
	GateFiles map[string][]byte
	// Shard and Shards say which part of the fleet this is: several shards write a matrix
	// each, under status/shards/, so they never write the same file.
	Shard, Shards int
}

// Files builds the status files of a snapshot: one per design and cluster, a drift ledger per
// cluster, the fleet matrix and the gate files. The same snapshot always gives the same bytes.
func Files(s Snapshot) (map[string][]byte, error) {
	files := map[string][]byte{}
	syncs := slices.Clone(s.Syncs)
	slices.SortFunc(syncs, func(a, b Sync) int {
		if a.Design != b.Design {
			return compare(a.Design, b.Design)
		}
		return compare(a.Cluster, b.Cluster)
	})
	byCluster := map[string][]drift.Report{}
	gateKeys := slices.Sorted(maps.Keys(s.Gates))
	for i := range syncs {
		sy := &syncs[i]
		entries := s.Drift[sy.Cluster+"/"+sy.Design]
		sy.Drift = Summarise(entries)
		if len(entries) > 0 {
			byCluster[sy.Cluster] = append(byCluster[sy.Cluster], drift.Report{Cluster: sy.Cluster, Design: sy.Design, Entries: entries})
		}
		sy.Gates = nil
		for _, k := range gateKeys {
			if g := s.Gates[k]; k == sy.Design+"/"+g.Name+"/"+sy.Cluster {
				sy.Gates = append(sy.Gates, g)
			}
		}
		data, err := JSON(sy)
		if err != nil {
			return nil, fmt.Errorf("status of %s on %s: %w", sy.Design, sy.Cluster, err)
		}
		files[SyncPath(sy.Design, sy.Cluster)] = data
	}
	for cluster, reps := range byCluster {
		data, err := JSON(reps)
		if err != nil {
			return nil, fmt.Errorf("drift ledger of %s: %w", cluster, err)
		}
		files[DriftPath(cluster)] = data
	}
	if len(syncs) > 0 {
		readme := ReadmePath
		if s.Shards > 1 {
			readme = fmt.Sprintf("status/shards/%d.md", s.Shard)
		}
		files[readme] = []byte(Matrix(syncs))
	}
	maps.Copy(files, s.GateFiles)
	return files, nil
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Summarise counts a ledger: entries detected and healed, and the objects contested.
func Summarise(entries []drift.Entry) Drift {
	var d Drift
	for _, e := range entries {
		d.Detected++
		if e.HealedAt != nil {
			d.Healed++
		}
		if e.Contested && !slices.Contains(d.Contested, e.Object) {
			d.Contested = append(d.Contested, e.Object)
		}
	}
	return d
}

// MergeLedger keeps the entries an earlier run committed and adds this run's, oldest first,
// at most LedgerSize.
func MergeLedger(old, current []drift.Entry) []drift.Entry {
	out := slices.Clone(old)
	for _, e := range current {
		dup := slices.ContainsFunc(out, func(o drift.Entry) bool {
			return o.Object == e.Object && o.DetectedAt.Equal(e.DetectedAt)
		})
		if !dup {
			out = append(out, e)
		}
	}
	if len(out) > LedgerSize {
		out = out[len(out)-LedgerSize:]
	}
	return out
}

// Record fills what a sync result says into a design's status on a cluster: health, the
// objects not ready, the error, the objects of the bundle with how many failed, and the
// objects it adopted from another design (added to those adopted before). What the
// sync did to each object (created, unchanged, ...) is left out on purpose: a re-sync that
// changes nothing in the cluster must not change the file either.
func Record(s *Sync, res *reconciler.SyncResult, objects int) {
	s.Error = res.Error
	s.Health = res.Health.Status
	s.NotReady = nil
	for _, nr := range res.Health.NotReady {
		s.NotReady = append(s.NotReady, nr.Object)
	}
	s.Objects = map[string]int{"total": objects, "failed": res.Count(reconciler.Failed)}
	for _, e := range res.Entries {
		a := Adoption{Object: e.Object, From: e.AdoptedFrom}
		if e.AdoptedFrom != "" && e.Action != reconciler.Failed && !slices.Contains(s.Adopted, a) {
			s.Adopted = append(s.Adopted, a)
		}
	}
}
