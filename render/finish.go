package render

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"sync"

	"github.com/meshcd/meshcd/schema"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// finish labels, orders and digests a compiler's output.
func finish(d *schema.Design, c *schema.Cluster, opts Options, out *output) (*Bundle, error) {
	for _, o := range out.objects {
		labels := o.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[LabelManagedBy] = ManagedByMeshcd
		labels[LabelDesign] = d.Name
		labels[LabelCluster] = c.Name
		o.SetLabels(labels)
	}
	sortObjects(out.objects)
	sum := sha256.New()
	for _, o := range out.objects {
		digest, err := objectDigest(o, opts.SecretKey)
		if err != nil {
			return nil, err
		}
		ann := o.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		ann[AnnotationDigest] = digest
		o.SetAnnotations(ann)
		sum.Write([]byte(ObjectID(o) + " " + digest + "\n"))
	}
	return &Bundle{
		Design:   d.Name,
		Cluster:  c.Name,
		Revision: opts.Revision,
		Objects:  out.objects,
		Digest:   "sha256:" + hex.EncodeToString(sum.Sum(nil)),
		Warnings: out.warnings,
		secrets:  secretValues(out.objects),
	}, nil
}

// objectDigest hashes an object's canonical JSON (maps marshal with sorted keys) without
// meshcd's digest annotation. A Secret's digest is keyed (HMAC-SHA256) with key, or with a
// key this process made up when there is none: a plain hash on the object would let anyone
// who can read its annotations confirm a guessed value offline.
func objectDigest(o *unstructured.Unstructured, key []byte) (string, error) {
	c := o.DeepCopy()
	ann := c.GetAnnotations()
	delete(ann, AnnotationDigest)
	if len(ann) == 0 {
		ann = nil
	}
	c.SetAnnotations(ann)
	data, err := json.Marshal(c.Object)
	if err != nil {
		return "", err
	}
	if isSecret(o) {
		if len(key) == 0 {
			key = processKey()
		}
		mac := hmac.New(sha256.New, key)
		mac.Write(data)
		return "hmac-sha256:" + hex.EncodeToString(mac.Sum(nil)), nil
	}
	h := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(h[:]), nil
}

func isSecret(o *unstructured.Unstructured) bool {
	return o.GetKind() == "Secret" && o.GroupVersionKind().Group == ""
}

// processKey is a Secret digest key that lives as long as this process: what a render without
// a key (the CLI) uses.
var processKey = sync.OnceValue(func() []byte { return NewSecretKey() })

// NewSecretKey makes a random key for Secret digests.
func NewSecretKey() []byte {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		panic(fmt.Sprintf("no randomness for a digest key: %v", err))
	}
	return key
}

// ObjectID names an object the way errors and diffs do: group/kind namespace/name.
func ObjectID(o *unstructured.Unstructured) string {
	gvk := o.GroupVersionKind()
	kind := gvk.Kind
	if gvk.Group != "" {
		kind = gvk.Group + "/" + kind
	}
	if ns := o.GetNamespace(); ns != "" {
		return kind + " " + ns + "/" + o.GetName()
	}
	return kind + " " + o.GetName()
}

// stage is where a kind goes in the apply order.
func stage(o *unstructured.Unstructured) int {
	gvk := o.GroupVersionKind()
	switch {
	case gvk.Group == "apiextensions.k8s.io" && gvk.Kind == "CustomResourceDefinition":
		return 0
	case gvk.Group == "" && gvk.Kind == "Namespace":
		return 1
	case gvk.Group == "rbac.authorization.k8s.io",
		gvk.Group == "" && (gvk.Kind == "ServiceAccount" || gvk.Kind == "ConfigMap" || gvk.Kind == "Secret"):
		return 2
	case gvk.Group == "" || gvk.Group == "apps" || gvk.Group == "batch" || gvk.Group == "autoscaling" || gvk.Group == "policy":
		return 3
	}
	return 4
}

func sortObjects(objs []*unstructured.Unstructured) {
	sort.SliceStable(objs, func(i, j int) bool {
		a, b := objs[i], objs[j]
		if sa, sb := stage(a), stage(b); sa != sb {
			return sa < sb
		}
		if ka, kb := a.GroupVersionKind().GroupKind().String(), b.GroupVersionKind().GroupKind().String(); ka != kb {
			return ka < kb
		}
		if a.GetNamespace() != b.GetNamespace() {
			return a.GetNamespace() < b.GetNamespace()
		}
		return a.GetName() < b.GetName()
	})
}
