// Package web is the daemon's read-only view of the fleet in a browser: pages rendered with
// html/template from a snapshot the daemon hands it, live updates by server-sent events, and
// every asset embedded in the binary. Nothing in it changes a cluster or Git.
package web

import (
	"io/fs"
	"time"
)

// Fleet is what the view shows: a snapshot of every repo the daemon follows.
type Fleet struct {
	Repos []Repo `json:"repos"`
}

// Repo is one fleet repo as its controller last published it.
type Repo struct {
	URL    string `json:"url"`
	Branch string `json:"branch"`
	// Revision is the content revision applied, Message its commit's message.
	Revision string `json:"revision"`
	Message  string `json:"message,omitempty"`
	// Error says why the latest revision is not applied.
	Error string `json:"error,omitempty"`
	// Web is the repo's web page (https://host/owner/name) when its URL has one; commits
	// link to Web + CommitPath + revision.
	Web        string `json:"web,omitempty"`
	CommitPath string `json:"commitPath,omitempty"`
	// Clusters are the labels of each cluster the fleet file declares.
	Clusters map[string]map[string]string `json:"clusters"`
	Cells    []Cell                       `json:"cells"`
	Gates    []GateHistory                `json:"gates,omitempty"`
	Previews []Preview                    `json:"previews,omitempty"`
	Rollouts []Rollout                    `json:"rollouts,omitempty"`
	// Files are the applied revision's files, where each run's committed chart is read.
	Files fs.FS `json:"-"`
}

// Cell is one design on one cluster.
type Cell struct {
	Design   string `json:"design"`
	Cluster  string `json:"cluster"`
	Revision string `json:"revision"`
	// Health is the kstatus of the design's worst object (Current, InProgress, ...), or ""
	// before the first sync reported.
	Health   string   `json:"health"`
	Pending  bool     `json:"pending,omitempty"`
	Error    string   `json:"error,omitempty"`
	Objects  int      `json:"objects"`
	Failed   int      `json:"failed"`
	NotReady []string `json:"notReady,omitempty"`
	// Duration is how long the last sync took.
	Duration string        `json:"duration,omitempty"`
	Drift    DriftSummary  `json:"drift"`
	Gates    []GateMark    `json:"gates,omitempty"`
	Entries  []Object      `json:"entries,omitempty"`
	Ledger   []DriftRecord `json:"ledger,omitempty"`
}

// DriftSummary counts a cell's drift.
type DriftSummary struct {
	Detected  int      `json:"detected"`
	Healed    int      `json:"healed"`
	Contested []string `json:"contested,omitempty"`
}

// GateMark is a gate's latest state on a cell.
type GateMark struct {
	Name    string `json:"name"`
	Pass    bool   `json:"pass"`
	Error   string `json:"error,omitempty"`
	Running bool   `json:"running,omitempty"`
	// Measured is false before the gate's first verdict.
	Measured bool `json:"measured"`
}

// Object is what the last sync did to one object, and how it is.
type Object struct {
	Name    string `json:"name"`
	Action  string `json:"action"`
	Health  string `json:"health,omitempty"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

// DriftRecord is one line of a cell's drift ledger.
type DriftRecord struct {
	Object    string     `json:"object"`
	Kind      string     `json:"kind"`
	Fields    []string   `json:"fields,omitempty"`
	By        string     `json:"by,omitempty"`
	Detected  time.Time  `json:"detected"`
	Healed    *time.Time `json:"healed,omitempty"`
	Contested bool       `json:"contested,omitempty"`
	Error     string     `json:"error,omitempty"`
}

// GateHistory is a gate's runs on one cluster, oldest first, with what they were judged by.
type GateHistory struct {
	Design  string `json:"design"`
	Gate    string `json:"gate"`
	Cluster string `json:"cluster"`
	Runs    []Run  `json:"runs"`
	// Budget holds the gate's thresholds in ms (p50, p90, p99) and as a fraction (errorRate).
	Budget map[string]float64 `json:"budget,omitempty"`
	// Checks are the latest verdict's lines.
	Checks []string `json:"checks,omitempty"`
	// Chart is the latest run's SVG histogram (meshcd's own rendering).
	Chart []byte `json:"-"`
}

// Run is one gate run.
type Run struct {
	Time      time.Time `json:"time"`
	Revision  string    `json:"revision"`
	Pass      bool      `json:"pass"`
	P50       float64   `json:"p50"`
	P90       float64   `json:"p90"`
	P99       float64   `json:"p99"`
	ErrorRate float64   `json:"errorRate"`
	// Chart is where the run's SVG histogram is committed in the repo.
	Chart string `json:"chart,omitempty"`
}

// Preview is an open pull request's preview.
type Preview struct {
	ID       string          `json:"id"`
	Ref      string          `json:"ref"`
	Revision string          `json:"revision"`
	Error    string          `json:"error,omitempty"`
	Targets  []PreviewTarget `json:"targets"`
	Gates    []PreviewGate   `json:"gates,omitempty"`
}

// PreviewTarget is what a pull request would change of one design on one cluster.
type PreviewTarget struct {
	Design  string   `json:"design"`
	Cluster string   `json:"cluster"`
	Changes []string `json:"changes"`
	Error   string   `json:"error,omitempty"`
}

// PreviewGate is a pull-request gate's verdict.
type PreviewGate struct {
	Design string   `json:"design"`
	Gate   string   `json:"gate"`
	Pass   bool     `json:"pass"`
	Error  string   `json:"error,omitempty"`
	Checks []string `json:"checks,omitempty"`
}

// Rollout is a gate's rollout: the steps, where it stands and why it holds.
type Rollout struct {
	Design  string `json:"design"`
	Gate    string `json:"gate"`
	Service string `json:"service"`
	Version string `json:"version"`
	Steps   []int  `json:"steps"`
	// Current is the version's weight now, -1 before the first step.
	Current int    `json:"current"`
	Held    string `json:"held,omitempty"`
	// Verdicts are the gate's verdicts per target cluster at the applied revision:
	// "pass", "fail", "running" or "waiting".
	Verdicts map[string]string `json:"verdicts"`
}
