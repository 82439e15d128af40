package gates

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/meshcd/meshcd/schema"
)

func TestDecide(t *testing.T) {
	at := func(c int) *int { return &c }
	steps := []int{20, 50, 100}
	for _, tt := range []struct {
		name     string
		current  *int
		held     string
		pass     bool
		want     int
		wantHeld bool
		wantOK   bool
	}{
		{"first step after a pass", nil, "", true, 20, false, true},
		{"next step", at(20), "", true, 50, false, true},
		{"done after the last step", at(100), "", true, 0, false, false},
		{"a failure rolls back one step and holds", at(50), "", false, 20, true, true},
		{"a failure at the first step goes to 0", at(20), "", false, 0, true, true},
		{"held stays held", at(20), "gate failed", true, 0, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, ok := Decide(schema.Rollout{Steps: steps, Current: tt.current, Held: tt.held}, tt.pass)
			if s.Weight != tt.want || (s.Held != "") != tt.wantHeld || ok != tt.wantOK {
				t.Errorf("Decide = %+v, %v", s, ok)
			}
		})
	}
}

func TestDecideAllWaitsForEveryCluster(t *testing.T) {
	yes, no := true, false
	r := schema.Rollout{Steps: []int{20, 50, 100}}
	clusters := []string{"east", "west"}
	for _, tt := range []struct {
		name     string
		verdicts map[string]*bool
		want     Step
		wantOK   bool
	}{
		{"one cluster still running", map[string]*bool{"east": &yes}, Step{}, false},
		{"all passed", map[string]*bool{"east": &yes, "west": &yes}, Step{Weight: 20}, true},
		{"one failed", map[string]*bool{"east": &yes, "west": &no}, Step{Weight: 0, Held: "gate failed at 0%; rolled back to 0%"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := DecideAll(r, tt.verdicts, clusters)
			if diff := cmp.Diff(tt.want, got); diff != "" || ok != tt.wantOK {
				t.Errorf("DecideAll ok=%v (-want +got)\n%s", ok, diff)
			}
		})
	}
}

func TestRolloutFileIsCUEForTheDesign(t *testing.T) {
	p, data := RolloutFile("shop", "canary", Step{Weight: 20, Held: "gate failed at 50%; rolled back to 20%"})
	want := "// Written by meshcd: the rollout of gate canary. Delete this file to start the rollout over.\ndesign: \"shop\": gates: \"canary\": rollout: {\n\tcurrent: 20\n\theld: \"gate failed at 50%; rolled back to 20%\"\n}\n"
	if p != "designs/shop/rollout-canary.cue" || string(data) != want {
		t.Errorf("RolloutFile = %s\n%s", p, data)
	}
}
