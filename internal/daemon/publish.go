package daemon

import (
	"maps"
	"slices"
	"time"

	"github.com/meshcd/meshcd/sources"
	"github.com/meshcd/meshcd/status"
)

// RepoStatus is one repo in /api/v1/status: a copy, published by the repo's controller.
type RepoStatus struct {
	URL    string `json:"url"`
	Branch string `json:"branch"`
	// Revision is the content revision applied.
	Revision string `json:"revision"`
	// Error says why the latest revision is not applied, if it is not.
	Error string `json:"error,omitempty"`
	// Ready is set once every sync of the first revision applied has reported.
	Ready bool                   `json:"ready"`
	Git   GitStatus              `json:"git"`
	Syncs []SyncStatus           `json:"syncs"`
	Gates map[string]status.Gate `json:"gates,omitempty"`
	// GatesRunning are the gate runs sending load now, GatesWaiting those waiting for their
	// cluster's or a global slot (design/gate/cluster).
	GatesRunning []string `json:"gatesRunning,omitempty"`
	GatesWaiting []string `json:"gatesWaiting,omitempty"`
	// WorkerStarts counts the evaluation worker processes started for the repo's branch: one
	// serves revision after revision, and a new one replaces one killed over its budget.
	WorkerStarts int `json:"workerStarts"`
}

// GitStatus is what the repo's Git server has been answering.
type GitStatus struct {
	Poll    pollState              `json:"poll"`
	Commits sources.CommitterState `json:"commits"`
}

// SyncStatus is a design's status on a cluster plus what its last sync did.
type SyncStatus struct {
	status.Sync
	Pending bool `json:"pending,omitempty"`
	// Actions counts what the last sync did to the objects (created, configured, ...).
	Actions  map[string]int `json:"actions,omitempty"`
	Duration string         `json:"duration,omitempty"`
}

func (c *repoController) publish() {
	s := &RepoStatus{URL: sources.Redact(c.cfg.URL), Branch: c.cfg.Branch, Revision: c.applied, Error: c.loadErr, Ready: c.ready,
		Git: GitStatus{Poll: c.poll}, Syncs: []SyncStatus{}, Gates: maps.Clone(c.gates)}
	for _, key := range slices.Sorted(maps.Keys(c.syncs)) {
		st := c.syncs[key]
		ss := SyncStatus{Sync: st.status, Pending: st.pending}
		ss.NotReady, ss.Objects = slices.Clone(ss.NotReady), maps.Clone(ss.Objects)
		if det := c.d.drift[ss.Cluster]; det != nil {
			ss.Drift = status.Summarise(status.MergeLedger(c.ledger[ss.Cluster+"/"+ss.Design], det.Report(ss.Design).Entries))
		}
		if st.last != nil {
			ss.Actions = map[string]int{}
			for _, e := range st.last.Entries {
				ss.Actions[string(e.Action)]++
			}
			ss.Duration = st.last.Duration.Round(time.Millisecond).String()
		}
		s.Syncs = append(s.Syncs, ss)
	}
	for _, key := range slices.Sorted(maps.Keys(c.running)) {
		if c.running[key].loading.Load() {
			s.GatesRunning = append(s.GatesRunning, key)
		} else {
			s.GatesWaiting = append(s.GatesWaiting, key)
		}
	}
	c.published.Store(s)
	c.publishView()
}

// Status returns the controller's published status with its committer's state of now.
func (c *repoController) Status() RepoStatus {
	s := *c.published.Load()
	s.Git.Commits = c.commits.State()
	s.WorkerStarts = c.worker.Starts()
	return s
}
