package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"

	"github.com/meshcd/meshcd/schema"
	"github.com/meshcd/meshcd/sources"
)

// RolloutMarker starts the message of meshcd's rollout commits. They are ordinary changes
// (they move a weight), so they are applied and gated like any other commit.
const RolloutMarker = "meshcd: rollout"

// Decide is a rollout's next weight given the gate's verdict at the current one: the next step
// when it passed (none after the last), the previous step when it failed, with the reason it
// is then held. ok is false when nothing is to change.
func Decide(r schema.Rollout, pass bool) (next int, held string, ok bool) {
	cur := 0
	if r.Current != nil {
		cur = *r.Current
	}
	if r.Held != "" {
		return 0, "", false
	}
	i := slices.Index(r.Steps, cur)
	if pass {
		if i == len(r.Steps)-1 {
			return 0, "", false
		}
		return r.Steps[i+1], "", true // i is -1 before the first step
	}
	prev := 0
	if i > 0 {
		prev = r.Steps[i-1]
	}
	return prev, fmt.Sprintf("gate failed at %d%%; rolled back to %d%%", cur, prev), true
}

// RolloutFile is designs/<design>/rollout-<gate>.cue: the rollout's state, unified by CUE with
// the design the user wrote.
func RolloutFile(design, gate string, current int, held string) (string, []byte) {
	body := fmt.Sprintf("// Written by meshcd: the rollout of gate %s. Delete this file to start the rollout over.\ndesign: %q: gates: %q: rollout: {\n\tcurrent: %d\n", gate, design, gate, current)
	if held != "" {
		body += fmt.Sprintf("\theld: %q\n", held)
	}
	body += "}\n"
	return path.Join("designs", design, "rollout-"+gate+".cue"), []byte(body)
}

// rollouts advances or rolls back every rollout whose gate ran on this revision on all its
// target clusters: all passed moves to the next step, any failed moves back one and holds.
func (d *Daemon) rollouts(ctx context.Context, rc RepoConfig, repo sources.Repo, st *repoState, designs []schema.Design, fl *schema.Fleet, revision string) {
	files := map[string][]byte{}
	var what []string
	for i := range designs {
		dsg := &designs[i]
		for _, name := range slices.Sorted(maps.Keys(dsg.Gates)) {
			g := dsg.Gates[name]
			if g.Rollout == nil {
				continue
			}
			pass, ran := true, false
			d.mu.Lock()
			for _, c := range dsg.TargetClusters(fl) {
				if !d.shard.Owns(c.Name) {
					continue
				}
				v, ok := st.gates[dsg.Name+"/"+name+"/"+c.Name]
				if !ok || v.Revision != revision {
					pass = false
					ran = false
					break
				}
				ran = true
				pass = pass && v.Pass
			}
			d.mu.Unlock()
			if !ran {
				continue
			}
			next, held, ok := Decide(*g.Rollout, pass)
			if !ok {
				continue
			}
			p, data := RolloutFile(dsg.Name, name, next, held)
			files[p] = data
			what = append(what, fmt.Sprintf("%s/%s %s to %d%%", dsg.Name, name, map[bool]string{true: "advanced", false: "rolled back"}[pass], next))
		}
	}
	if len(files) == 0 {
		return
	}
	opts := sources.DefaultCommitOptions()
	opts.Branch = rc.Branch
	opts.Marker = RolloutMarker
	opts.Message = fmt.Sprint(what)
	if _, err := d.poller.CommitFiles(ctx, repo, opts, files); err != nil && !errors.Is(err, sources.ErrNothingToCommit) {
		d.log.Error("rollout commit failed", "repo", sources.Redact(rc.URL), "err", err)
		return
	}
	d.log.Info("rollout", "changes", what)
}
