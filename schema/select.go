package schema

import "slices"

// Matches reports whether a cluster with these labels is selected, with Kubernetes label
// selector semantics: every matchLabels pair and every expression must hold; an empty selector
// matches everything.
func (s Selector) Matches(labels map[string]string) bool {
	for k, v := range s.MatchLabels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	for _, r := range s.MatchExpressions {
		v, ok := labels[r.Key]
		switch r.Operator {
		case "In":
			if !ok || !slices.Contains(r.Values, v) {
				return false
			}
		case "NotIn":
			if ok && slices.Contains(r.Values, v) {
				return false
			}
		case "Exists":
			if !ok {
				return false
			}
		case "DoesNotExist":
			if ok {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// TargetClusters returns the clusters of the fleet that the design selects, in the fleet's order.
func (d *Design) TargetClusters(f *Fleet) []Cluster {
	var out []Cluster
	for _, c := range f.Clusters {
		if d.Targets.Matches(c.Labels) {
			out = append(out, c)
		}
	}
	return out
}

// OverridesFor returns the design's overrides that apply to the cluster, in the order written;
// later ones win where they overlap.
func (d *Design) OverridesFor(c Cluster) []Override {
	var out []Override
	for _, o := range d.Overrides {
		if (o.Cluster != "" && o.Cluster == c.Name) || (o.Selector != nil && o.Selector.Matches(c.Labels)) {
			out = append(out, o)
		}
	}
	return out
}
