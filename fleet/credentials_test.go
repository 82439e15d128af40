package fleet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const kubeconfig = `apiVersion: v1
kind: Config
current-context: plain
clusters:
- name: plain
  cluster: {server: "https://127.0.0.1:6443", certificate-authority-data: ""}
- name: insecure
  cluster: {server: "https://127.0.0.1:6444", insecure-skip-tls-verify: true}
users:
- name: token
  user: {token: s3cr3t-token}
- name: exec
  user:
    exec: {apiVersion: client.authentication.k8s.io/v1, command: /usr/local/bin/steal-credentials, interactiveMode: Never}
- name: provider
  user:
    auth-provider: {name: gcp}
contexts:
- name: plain
  context: {cluster: plain, user: token}
- name: exec
  context: {cluster: plain, user: exec}
- name: provider
  context: {cluster: plain, user: provider}
- name: insecure
  context: {cluster: insecure, user: token}
`

func TestCredentialsRefusePluginsAndInsecureTLS(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		context string
		allow   func(*Credentials)
		wantErr string
	}{
		{context: "plain"},
		{context: "", wantErr: ""}, // the current context
		{context: "exec", wantErr: `cluster east: kubeconfig ` + path + ` user "exec" runs an exec credential plugin (/usr/local/bin/steal-credentials); set allowExec`},
		{context: "exec", allow: func(c *Credentials) { c.AllowExec = true }},
		{context: "provider", wantErr: `user "provider" uses auth provider "gcp"`},
		{context: "insecure", wantErr: `cluster "insecure" skips TLS verification; set allowInsecure`},
		{context: "insecure", allow: func(c *Credentials) { c.AllowInsecure = true }},
		{context: "nowhere", wantErr: `has no context "nowhere"`},
	} {
		cr := Credentials{Kubeconfig: path, Context: tt.context}
		if tt.allow != nil {
			tt.allow(&cr)
		}
		cfg, err := cr.RESTConfig(t.Context(), "east", nil)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("context %q: %v", tt.context, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("context %q: err %v, want it to contain %q", tt.context, err, tt.wantErr)
		case err != nil && strings.Contains(err.Error(), "s3cr3t"):
			t.Errorf("context %q: the error leaks the token: %v", tt.context, err)
		case err == nil && cfg.Host == "":
			t.Errorf("context %q: no host", tt.context)
		}
	}
	if _, err := (Credentials{}).RESTConfig(t.Context(), "east", nil); err == nil || !strings.Contains(err.Error(), "no credentials") {
		t.Errorf("empty credentials: %v", err)
	}
}
