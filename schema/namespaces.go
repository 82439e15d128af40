package schema

import (
	"fmt"
	"strings"
)

// resolveNamespaces decides which design renders each namespace: the one design that uses
// it, or the one of several that says ownsNamespace: true. Designs sharing a namespace without
// saying who owns it, or with two owners, are issues naming the others.
func resolveNamespaces(designs []Design) []designIssue {
	byNS := map[string][]int{}
	var order []string
	for i := range designs {
		ns := designs[i].Namespace
		if _, ok := byNS[ns]; !ok {
			order = append(order, ns)
		}
		byNS[ns] = append(byNS[ns], i)
	}
	var out []designIssue
	for _, ns := range order {
		idx := byNS[ns]
		var owners, unsaid []int
		for _, i := range idx {
			switch o := designs[i].OwnsNamespace; {
			case o == nil:
				unsaid = append(unsaid, i)
			case *o:
				owners = append(owners, i)
			}
		}
		if len(idx) == 1 {
			designs[idx[0]].NamespaceOwner = len(unsaid) == 1 || len(owners) == 1
			continue
		}
		names := func(except int) string {
			var n []string
			for _, j := range idx {
				if j != except {
					n = append(n, designs[j].Name)
				}
			}
			return strings.Join(n, ", ")
		}
		switch {
		case len(owners) > 1:
			for _, i := range owners[1:] {
				out = append(out, designIssue{i, ruleIssue{fieldPath{"ownsNamespace"},
					fmt.Sprintf("namespace %s is already owned by design %s; one design owns a namespace", ns, designs[owners[0]].Name)}})
			}
		case len(owners) == 0 && len(unsaid) > 0:
			for _, i := range unsaid {
				out = append(out, designIssue{i, ruleIssue{fieldPath{"namespace"},
					fmt.Sprintf("namespace %s is also used by design %s: say which design owns it (ownsNamespace: true on one) or that none does (ownsNamespace: false)", ns, names(i))}})
			}
		case len(owners) == 1:
			designs[owners[0]].NamespaceOwner = true
		}
	}
	return out
}
