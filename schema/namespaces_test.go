package schema

import (
	"fmt"
	"strings"
	"testing"
)

func nsDesign(name, ns, owns string) (string, string) {
	return "designs/" + name + "/design.cue", fmt.Sprintf("design: %s: {\n\tnamespace: %q\n%s}\n", name, ns, owns)
}

// TestSharedNamespaceHasOneOwner: base, istiod and ztunnel all live in istio-system. Without
// a word on who owns it, loading names the designs that share it; with base saying it owns
// it, only base renders the Namespace; two owners are refused; a design alone in its
// namespace owns it without saying so, and one saying false owns nothing.
func TestSharedNamespaceHasOneOwner(t *testing.T) {
	files := func(owns map[string]string) map[string]string {
		out := map[string]string{}
		for _, n := range []string{"base", "istiod", "ztunnel"} {
			p, src := nsDesign(n, "istio-system", owns[n])
			out[p] = src
		}
		p, src := nsDesign("shop", "shop", "")
		out[p] = src
		p, src = nsDesign("ops", "kube-system", "\townsNamespace: false\n")
		out[p] = src
		return out
	}
	_, issues := load(t, files(nil))
	if len(issues) != 3 {
		t.Fatalf("want one issue per design sharing istio-system, got %v", issues)
	}
	for _, is := range issues {
		if !strings.Contains(is, "namespace istio-system is also used by design") || !strings.Contains(is, "ownsNamespace") {
			t.Errorf("issue does not say what to do: %s", is)
		}
	}
	if !strings.Contains(issues[0], "designs/base/design.cue:2:") || !strings.Contains(issues[0], "istiod, ztunnel") {
		t.Errorf("base's issue should point at its namespace line and name the others: %s", issues[0])
	}

	designs, issues := load(t, files(map[string]string{"base": "\townsNamespace: true\n"}))
	if issues != nil {
		t.Fatalf("base owning istio-system: %v", issues)
	}
	owner := map[string]bool{}
	for _, d := range designs {
		owner[d.Name] = d.NamespaceOwner
	}
	want := map[string]bool{"base": true, "istiod": false, "ztunnel": false, "shop": true, "ops": false}
	for n, w := range want {
		if owner[n] != w {
			t.Errorf("design %s renders its Namespace: %v, want %v", n, owner[n], w)
		}
	}

	_, issues = load(t, files(map[string]string{"base": "\townsNamespace: true\n", "istiod": "\townsNamespace: true\n"}))
	if len(issues) != 1 || !strings.Contains(issues[0], "designs/istiod/design.cue") || !strings.Contains(issues[0], "already owned by design base") {
		t.Errorf("two owners: %v", issues)
	}
}
