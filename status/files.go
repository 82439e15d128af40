// Package status owns the files meshcd writes back to Git: one file per design and cluster
// with what the last sync did, a drift ledger per cluster, and status/README.md, a fleet
// matrix that reads well on a Git host. It only formats; sources commits the files. Nothing
// in them changes unless the fleet's state changed, so an idle round makes no commit.
package status

import (
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
)

// Sync is status/<design>/<cluster>.json.
type Sync struct {
	Design   string `json:"design"`
	Cluster  string `json:"cluster"`
	Revision string `json:"revision"`
	Digest   string `json:"digest,omitempty"`
	// Objects counts the objects of the bundle ("total") and those the last sync could not
	// apply ("failed").
	Objects map[string]int `json:"objects"`
	Health  string         `json:"health"`
	// NotReady names the objects that are not Current.
	NotReady []string `json:"notReady,omitempty"`
	Error    string   `json:"error,omitempty"`
	// Adopted lists the objects this design took over from another design (sync.adopt),
	// kept once recorded: later syncs no longer adopt them, and the file must still say so.
	Adopted []Adoption `json:"adopted,omitempty"`
	Drift   Drift      `json:"drift"`
	Gates   []Gate     `json:"gates,omitempty"`
}

// Adoption is one object a design took over, and the design it took it from.
type Adoption struct {
	Object string `json:"object"`
	From   string `json:"from"`
}

// Drift summarises the cluster's drift ledger for one design.
type Drift struct {
	Detected  int      `json:"detected"`
	Healed    int      `json:"healed"`
	Contested []string `json:"contested,omitempty"`
}

// Gate is a gate's latest verdict for the design and cluster.
type Gate struct {
	Name     string `json:"name"`
	Pass     bool   `json:"pass"`
	Revision string `json:"revision"`
	// Digest is the design's bundle digest the gate measured: a change gate runs again only
	// when it changes.
	Digest string `json:"digest,omitempty"`
	// Spec names the gate's definition it ran with (gates.SpecHash).
	Spec  string  `json:"spec,omitempty"`
	P99Ms float64 `json:"p99Ms"`
	// Error says why no load was sent (the daemon's gate policy refused it, the target
	// could not be reached at all); Pass is then false.
	Error string `json:"error,omitempty"`
}

// SyncPath is where a design's status in a cluster is written.
func SyncPath(design, cluster string) string { return path.Join("status", design, cluster+".json") }

// DriftPath is a cluster's drift ledger.
func DriftPath(cluster string) string { return path.Join("status", "drift", cluster+".json") }

// ReadmePath is the fleet matrix.
const ReadmePath = "status/README.md"

// JSON marshals a status value the way every status file is written: indented, newline at
// the end, map keys sorted, so the same state always gives the same bytes.
func JSON(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Matrix renders status/README.md: designs down, clusters across, each cell the sync result,
// health, drift and gates at a glance, then every error in full.
func Matrix(syncs []Sync) string {
	designs, clusters := map[string]bool{}, map[string]bool{}
	cells := map[string]Sync{}
	for _, s := range syncs {
		designs[s.Design], clusters[s.Cluster] = true, true
		cells[s.Design+"/"+s.Cluster] = s
	}
	cs := slices.Sorted(maps.Keys(clusters))
	var b strings.Builder
	b.WriteString("# Fleet status\n\nWritten by meshcd after every round that changed something. ✅ synced and healthy · ⏳ in progress · ❌ failed · 🔀 drift · 🚦 gates.\n\n")
	b.WriteString("| design | " + strings.Join(cs, " | ") + " |\n|---|" + strings.Repeat("---|", len(cs)) + "\n")
	for _, d := range slices.Sorted(maps.Keys(designs)) {
		row := []string{d}
		for _, c := range cs {
			s, ok := cells[d+"/"+c]
			if !ok {
				row = append(row, "—")
				continue
			}
			row = append(row, cell(s))
		}
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	var errs []string
	for _, d := range slices.Sorted(maps.Keys(cells)) {
		if s := cells[d]; s.Error != "" {
			errs = append(errs, fmt.Sprintf("- **%s on %s**: %s", s.Design, s.Cluster, oneLine(s.Error)))
		}
	}
	if len(errs) > 0 {
		b.WriteString("\n## Errors\n\n" + strings.Join(errs, "\n") + "\n")
	}
	return b.String()
}

func cell(s Sync) string {
	mark := "✅"
	switch {
	case s.Error != "":
		mark = "❌"
	case s.Health != "Current":
		mark = "⏳"
	}
	out := fmt.Sprintf("%s `%s` %d objects, %s", mark, short(s.Revision), s.Objects["total"], s.Health)
	if s.Drift.Detected > 0 {
		out += fmt.Sprintf(" · 🔀 %d drifted, %d healed", s.Drift.Detected, s.Drift.Healed)
		if len(s.Drift.Contested) > 0 {
			out += fmt.Sprintf(", %d contested", len(s.Drift.Contested))
		}
	}
	for _, g := range s.Gates {
		word := "✅"
		if !g.Pass {
			word = "❌"
		}
		out += fmt.Sprintf(" · 🚦 %s %s", g.Name, word)
	}
	return out
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func short(rev string) string {
	if len(rev) > 7 {
		return rev[:7]
	}
	return rev
}
