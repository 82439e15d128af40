package gates

import (
	"fmt"
	"path"
	"slices"

	"github.com/meshcd/meshcd/schema"
)

// RolloutMarker starts the message of meshcd's rollout commits. They are ordinary changes
// (they move a weight), so they are applied and gated like any other commit.
const RolloutMarker = "meshcd: rollout"

// Step is what a rollout does next.
type Step struct {
	// Weight is the version's weight to commit.
	Weight int
	// Held says why the rollout stops there ("" while it advances).
	Held string
}

// Advanced reports whether the step moves forward.
func (s Step) Advanced() bool { return s.Held == "" }

func (s Step) String() string {
	if s.Held != "" {
		return fmt.Sprintf("rolled back to %d%%", s.Weight)
	}
	return fmt.Sprintf("advanced to %d%%", s.Weight)
}

// Decide is a rollout's next step given the gate's verdict at the current weight: the next
// weight when it passed (none after the last), the previous one when it failed, with the reason
// it is then held. ok is false when nothing is to change (the last step passed, or it is held).
func Decide(r schema.Rollout, pass bool) (step Step, ok bool) {
	cur := 0
	if r.Current != nil {
		cur = *r.Current
	}
	if r.Held != "" {
		return Step{}, false
	}
	i := slices.Index(r.Steps, cur)
	if pass {
		if i == len(r.Steps)-1 {
			return Step{}, false
		}
		return Step{Weight: r.Steps[i+1]}, true // i is -1 before the first step
	}
	prev := 0
	if i > 0 {
		prev = r.Steps[i-1]
	}
	return Step{Weight: prev, Held: fmt.Sprintf("gate failed at %d%%; rolled back to %d%%", cur, prev)}, true
}

// DecideAll is the rollout's next step once the gate has a verdict on every target cluster:
// all passed advances, any failed rolls back and holds. ok is false while a cluster has no
// verdict yet, or when Decide changes nothing.
func DecideAll(r schema.Rollout, verdicts map[string]*bool, clusters []string) (Step, bool) {
	pass := true
	for _, c := range clusters {
		v := verdicts[c]
		if v == nil {
			return Step{}, false
		}
		pass = pass && *v
	}
	if len(clusters) == 0 {
		return Step{}, false
	}
	return Decide(r, pass)
}

// RolloutFile is designs/<design>/rollout-<gate>.cue: the rollout's state, unified by CUE with
// the design the user wrote.
func RolloutFile(design, gate string, s Step) (string, []byte) {
	body := fmt.Sprintf("// Written by meshcd: the rollout of gate %s. Delete this file to start the rollout over.\ndesign: %q: gates: %q: rollout: {\n\tcurrent: %d\n", gate, design, gate, s.Weight)
	if s.Held != "" {
		body += fmt.Sprintf("\theld: %q\n", s.Held)
	}
	body += "}\n"
	return path.Join("designs", design, "rollout-"+gate+".cue"), []byte(body)
}
