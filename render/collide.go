package render

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Collisions finds objects that two designs render for one cluster. server-side apply would
// let the second silently take the object over, and each design would then see the other's
// write as drift; so both designs' bundles for that cluster are refused. It returns, per
// design and cluster ("design/cluster"), the error naming the object and the other design.
func Collisions(bundles []*Bundle) map[string]error {
	seen := map[string]map[string][]string{} // cluster -> object -> designs
	for _, b := range bundles {
		if seen[b.Cluster] == nil {
			seen[b.Cluster] = map[string][]string{}
		}
		for _, o := range b.Objects {
			id := ObjectID(o)
			if ds := seen[b.Cluster][id]; !slices.Contains(ds, b.Design) {
				seen[b.Cluster][id] = append(ds, b.Design)
			}
		}
	}
	problems := map[string][]string{}
	for cluster, objs := range seen {
		for _, id := range slices.Sorted(maps.Keys(objs)) {
			designs := objs[id]
			if len(designs) < 2 {
				continue
			}
			slices.Sort(designs)
			for _, d := range designs {
				others := slices.DeleteFunc(slices.Clone(designs), func(x string) bool { return x == d })
				problems[d+"/"+cluster] = append(problems[d+"/"+cluster],
					fmt.Sprintf("%s is also rendered by design %s", id, strings.Join(others, ", ")))
			}
		}
	}
	out := map[string]error{}
	for key, ps := range problems {
		design, cluster, _ := strings.Cut(key, "/")
		out[key] = &Error{Design: design, Cluster: cluster, Message: strings.Join(ps, "; ") +
			": an object belongs to one design (move it into one; a shared Namespace is rendered by the design with ownsNamespace: true)"}
	}
	return out
}
