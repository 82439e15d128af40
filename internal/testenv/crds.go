package testenv

import (
	"bufio"
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

//go:embed crds/*.yaml
var crdFiles embed.FS

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// CRDs returns the upstream CustomResourceDefinitions the test clusters get, decoded from the
// pinned files in crds/ (see crds/README.md).
func CRDs() ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	err := fs.WalkDir(crdFiles, "crds", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := crdFiles.ReadFile(path)
		if err != nil {
			return err
		}
		crds, err := decodeCRDs(path, data)
		out = append(out, crds...)
		return err
	})
	return out, err
}

// decodeCRDs returns the CustomResourceDefinitions of a multi-document YAML file, skipping any
// other kind (a release's admission policies, say).
func decodeCRDs(path string, data []byte) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := dec.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &obj.Object); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if obj.GetKind() == "CustomResourceDefinition" {
			out = append(out, obj)
		}
	}
}

// InstallCRDs server-side applies every CRD from CRDs to the cluster and waits until each is
// Established, so objects of those kinds can be created right after it returns.
func InstallCRDs(ctx context.Context, cfg *rest.Config) error {
	crds, err := CRDs()
	if err != nil {
		return err
	}
	return applyCRDs(ctx, cfg, crds)
}

// InstallCRDsWithGatewayAPI is InstallCRDs with another Gateway API release and channel than the
// pinned one (e.g. v1.3.0 experimental, which the pinned Contour reads), taken from the
// sigs.k8s.io/gateway-api module at that version. Use it on a cluster started with SkipCRDs.
func InstallCRDsWithGatewayAPI(ctx context.Context, cfg *rest.Config, version, channel string) error {
	all, err := CRDs()
	if err != nil {
		return err
	}
	var crds []*unstructured.Unstructured
	for _, crd := range all {
		if g, _, _ := unstructured.NestedString(crd.Object, "spec", "group"); !strings.HasSuffix(g, "gateway.networking.k8s.io") {
			crds = append(crds, crd)
		}
	}
	dir, err := moduleDir(ctx, "sigs.k8s.io/gateway-api@"+version)
	if err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(dir, "config", "crd", channel, "gateway.networking.k8s.io_*.yaml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no Gateway API %s %s CRDs in %s", version, channel, dir)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		more, err := decodeCRDs(f, data)
		if err != nil {
			return err
		}
		crds = append(crds, more...)
	}
	return applyCRDs(ctx, cfg, crds)
}

func applyCRDs(ctx context.Context, cfg *rest.Config, crds []*unstructured.Unstructured) error {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	client := dyn.Resource(crdGVR)
	errs := make([]error, len(crds))
	var wg sync.WaitGroup
	for i, crd := range crds {
		wg.Go(func() {
			data, err := crd.MarshalJSON()
			if err != nil {
				errs[i] = err
				return
			}
			force := true
			_, err = client.Patch(ctx, crd.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: "meshcd-testenv", Force: &force})
			if err != nil {
				errs[i] = fmt.Errorf("CRD %s: %w", crd.GetName(), err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, crd := range crds {
		name := crd.GetName()
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			live, err := client.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			conds, _, _ := unstructured.NestedSlice(live.Object, "status", "conditions")
			for _, c := range conds {
				m, _ := c.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("CRD %s not Established: %w", name, err)
		}
	}
	return nil
}
