package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAllowExec: a kubeconfig whose user logs in through an exec plugin (as EKS, GKE and AKS
// kubeconfigs do) is refused, naming the plugin, and the plugin does not run; with
// --allow-exec it runs.
func TestAllowExec(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "plugin-ran")
	plugin := filepath.Join(dir, "login.sh")
	must(t, os.WriteFile(plugin, []byte(fmt.Sprintf(`#!/bin/sh
touch %q
echo '{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", "status": {"token": "t"}}'
`, marker)), 0o755))
	kubeconfig := filepath.Join(dir, "kubeconfig")
	must(t, os.WriteFile(kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: east, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: cloud, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: %q, interactiveMode: Never}}}]
contexts: [{name: east, context: {cluster: east, user: cloud}}]
current-context: east
`, plugin)), 0o600))
	var out, errOut bytes.Buffer
	code := run(t.Context(), []string{"diff", "../../examples/shop", "--cluster", "east", "--kubeconfig", kubeconfig}, &out, &errOut)
	if code != 2 || !strings.Contains(errOut.String(), "exec credential plugin") || !strings.Contains(errOut.String(), "login.sh") {
		t.Fatalf("without --allow-exec: exit %d\n%s", code, errOut.String())
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the exec plugin ran without --allow-exec")
	}
	errOut.Reset()
	run(t.Context(), []string{"diff", "../../examples/shop", "--cluster", "east", "--kubeconfig", kubeconfig, "--allow-exec"}, &out, &errOut)
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("with --allow-exec the plugin did not run: %s", errOut.String())
	}
}
