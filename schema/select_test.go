package schema

import "testing"

func TestSelectorMatches(t *testing.T) {
	labels := map[string]string{"env": "prod", "region": "eu-west-1"}
	tests := []struct {
		name string
		sel  Selector
		want bool
	}{
		{"empty selects all", Selector{}, true},
		{"label equal", Selector{MatchLabels: map[string]string{"env": "prod"}}, true},
		{"label differs", Selector{MatchLabels: map[string]string{"env": "staging"}}, false},
		{"label missing", Selector{MatchLabels: map[string]string{"tier": "edge"}}, false},
		{"In", Selector{MatchExpressions: []Requirement{{Key: "env", Operator: "In", Values: []string{"staging", "prod"}}}}, true},
		{"In on missing key", Selector{MatchExpressions: []Requirement{{Key: "tier", Operator: "In", Values: []string{"edge"}}}}, false},
		{"NotIn", Selector{MatchExpressions: []Requirement{{Key: "region", Operator: "NotIn", Values: []string{"us-east-1"}}}}, true},
		{"NotIn excludes", Selector{MatchExpressions: []Requirement{{Key: "region", Operator: "NotIn", Values: []string{"eu-west-1"}}}}, false},
		{"NotIn on missing key holds", Selector{MatchExpressions: []Requirement{{Key: "tier", Operator: "NotIn", Values: []string{"edge"}}}}, true},
		{"Exists", Selector{MatchExpressions: []Requirement{{Key: "region", Operator: "Exists"}}}, true},
		{"DoesNotExist", Selector{MatchExpressions: []Requirement{{Key: "region", Operator: "DoesNotExist"}}}, false},
		{"all must hold", Selector{MatchLabels: map[string]string{"env": "prod"}, MatchExpressions: []Requirement{{Key: "tier", Operator: "Exists"}}}, false},
	}
	for _, tc := range tests {
		if got := tc.sel.Matches(labels); got != tc.want {
			t.Errorf("%s: Matches = %v, want %v", tc.name, got, tc.want)
		}
	}
}
