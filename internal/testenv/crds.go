package testenv

import (
	"bufio"
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

//go:embed crds/*.yaml
var crdFiles embed.FS

// crdPath is where the apiserver serves CustomResourceDefinitions.
const crdPath = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"

// crd is one CustomResourceDefinition to install: its name and group, and the object as JSON,
// the body of its server-side apply.
type crd struct {
	name, group string
	body        []byte
}

// pinnedCRDs are the CRDs of the files in crds/ (see crds/README.md), decoded once per process:
// 3 MiB of YAML costs seconds of CPU in a race-built test binary, and every cluster of every
// test gets the same set.
var pinnedCRDs = sync.OnceValues(func() ([]crd, error) {
	var out []crd
	err := fs.WalkDir(crdFiles, "crds", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
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
})

// decodeCRDs returns the CustomResourceDefinitions of a multi-document YAML file, skipping any
// other kind (a release's admission policies, say).
func decodeCRDs(path string, data []byte) ([]crd, error) {
	var out []crd
	dec := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := dec.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		body, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		var head struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				Group string `json:"group"`
			} `json:"spec"`
		}
		if err := json.Unmarshal(body, &head); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if head.Kind == "CustomResourceDefinition" {
			out = append(out, crd{name: head.Metadata.Name, group: head.Spec.Group, body: body})
		}
	}
}

// InstallCRDs server-side applies every pinned CRD to the cluster and waits until each is
// Established, so objects of those kinds can be created right after it returns.
func InstallCRDs(ctx context.Context, cfg *rest.Config) error {
	crds, err := pinnedCRDs()
	if err != nil {
		return err
	}
	return applyCRDs(ctx, cfg, crds)
}

// InstallCRDsWithGatewayAPI is InstallCRDs with another Gateway API release and channel than the
// pinned one (e.g. v1.3.0 experimental, which the pinned Contour reads), taken from the
// sigs.k8s.io/gateway-api module at that version. Use it on a cluster started with SkipCRDs.
func InstallCRDsWithGatewayAPI(ctx context.Context, cfg *rest.Config, version, channel string) error {
	all, err := pinnedCRDs()
	if err != nil {
		return err
	}
	var crds []crd
	for _, c := range all {
		if !strings.HasSuffix(c.group, "gateway.networking.k8s.io") {
			crds = append(crds, c)
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

// established reports whether a CRD as the apiserver returned it is Established; only its
// conditions are decoded, not the schema around them.
func established(data []byte) bool {
	var obj struct {
		Status struct {
			Conditions []struct{ Type, Status string } `json:"conditions"`
		} `json:"status"`
	}
	if json.Unmarshal(data, &obj) != nil {
		return false
	}
	for _, c := range obj.Status.Conditions {
		if c.Type == "Established" && c.Status == "True" {
			return true
		}
	}
	return false
}

func applyCRDs(ctx context.Context, cfg *rest.Config, crds []crd) error {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	client := cs.Discovery().RESTClient()
	errs := make([]error, len(crds))
	done := make([]bool, len(crds))
	var wg sync.WaitGroup
	for i, c := range crds {
		wg.Go(func() {
			out, err := client.Patch(types.ApplyPatchType).AbsPath(crdPath, c.name).
				Param("fieldManager", "meshcd-testenv").Param("force", "true").Body(c.body).Do(ctx).Raw()
			if err != nil {
				errs[i] = fmt.Errorf("CRD %s: %w", c.name, err)
				return
			}
			done[i] = established(out)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for i, c := range crds {
		if done[i] {
			continue
		}
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			out, err := client.Get().AbsPath(crdPath, c.name).Do(ctx).Raw()
			return err == nil && established(out), nil
		})
		if err != nil {
			return fmt.Errorf("CRD %s not Established: %w", c.name, err)
		}
	}
	return nil
}
