package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// AnalyzerMessage is one finding of Istio's analyzers.
type AnalyzerMessage struct {
	Code    string `json:"code"`
	Level   string `json:"level"`
	Origin  string `json:"origin"`
	Message string `json:"message"`
}

func (m AnalyzerMessage) String() string {
	return fmt.Sprintf("%s [%s] %s: %s", m.Level, m.Code, m.Origin, m.Message)
}

// IstioAnalyze runs Istio's own analyzers (`istioctl analyze --use-kube=false -A`, built by
// `make controlplanes`) over the objects, analyzed together as one cluster's configuration, and
// returns every finding, Info included.
func IstioAnalyze(ctx context.Context, objs []*unstructured.Unstructured) ([]AnalyzerMessage, error) {
	istioctl, err := testBinary("istioctl")
	if err != nil {
		return nil, err
	}
	var doc bytes.Buffer
	for _, o := range objs {
		data, err := yaml.Marshal(o.Object)
		if err != nil {
			return nil, err
		}
		doc.WriteString("---\n")
		doc.Write(data)
	}
	dir, err := os.MkdirTemp("", "meshcd-analyze-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "objects.yaml")
	if err := os.WriteFile(path, doc.Bytes(), 0o600); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, istioctl, "analyze", "--use-kube=false", "-A", "-o", "json", path)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	runErr := cmd.Run()
	var msgs []AnalyzerMessage
	if err := json.Unmarshal(out.Bytes(), &msgs); err != nil {
		return nil, fmt.Errorf("istioctl analyze: %v (%v): %s%s", err, runErr, out.String(), errOut.String())
	}
	return msgs, nil
}
