package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestImportIngressFromStdin(t *testing.T) {
	data, err := os.ReadFile("../../render/testdata/ingress/tls.yaml")
	if err != nil {
		t.Fatal(err)
	}
	root := newRootCommand(&bytes.Buffer{}, &bytes.Buffer{})
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(bytes.NewReader(data))
	root.SetArgs([]string{"import", "ingress", "--name", "web"})
	if err := root.ExecuteContext(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`design: web: {`, `"https-example.foo.com"`, `secret: "testsecret-tls"`, `service4: port: 8443`, `exact: "/api"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	// The Exact path is an exact route: nothing is left out, so nothing is warned about.
	if errOut.Len() != 0 {
		t.Errorf("stderr: %q, want nothing", errOut.String())
	}
}

func TestImportIngressNeedsIngressObjects(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"import", "ingress", "../../examples/platform/designs/checkout/base/config.yaml"}, &out, &errOut); code != 2 {
		t.Fatalf("exit %d, want 2; stderr %q", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "no Ingress or HTTPProxy") {
		t.Fatalf("stderr %q", errOut.String())
	}
}
