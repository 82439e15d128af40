package testenv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

// helperEnv, when set, makes the test binary act as a child that starts a cluster and then
// dies in the way the variable names ("kill": waits to be killed; "panic": panics).
const helperEnv = "MESHCD_TESTENV_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		runHelper(mode)
		return
	}
	os.Exit(m.Run())
}

func TestClustersServeEveryMeshKindAndSurviveRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	env, err := Start(ctx, Options{Clusters: 3})
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, c := range env.Clusters {
		pids = append(pids, c.PIDs()...)
	}
	defer func() {
		env.Stop()
		assertAllDead(t, pids)
	}()

	objs := readObjects(t, "testdata/mesh-objects.yaml")
	uids := map[string]map[string]types.UID{}
	for _, c := range env.Clusters {
		dyn, mapper := clients(t, c.Config())
		uids[c.Name] = map[string]types.UID{}
		for _, obj := range objs {
			ri := resource(t, dyn, mapper, obj)
			data, _ := obj.MarshalJSON()
			if _, err := ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: "meshcd-test"}); err != nil {
				t.Fatalf("%s: apply %s %s: %v", c.Name, obj.GetKind(), obj.GetName(), err)
			}
			live, err := ri.Get(ctx, obj.GetName(), metav1.GetOptions{})
			if err != nil {
				t.Fatalf("%s: read back %s %s: %v", c.Name, obj.GetKind(), obj.GetName(), err)
			}
			if path, ok := contains(live.Object["spec"], obj.Object["spec"]); !ok {
				t.Errorf("%s: %s %s: live spec differs from applied at %s", c.Name, obj.GetKind(), obj.GetName(), path)
			}
			uids[c.Name][key(obj)] = live.GetUID()
		}
	}

	// Stop one cluster: it stops answering, the others do not notice.
	stopped := env.Clusters[1]
	stopped.Stop()
	for _, pid := range stopped.PIDs() {
		if Alive(pid) {
			t.Fatalf("%s: process %d still running after Stop", stopped.Name, pid)
		}
	}
	if _, err := kubernetes.NewForConfigOrDie(quick(stopped.Config())).Discovery().ServerVersion(); err == nil {
		t.Fatalf("%s answered after Stop", stopped.Name)
	}
	for _, c := range []*Cluster{env.Clusters[0], env.Clusters[2]} {
		if _, err := kubernetes.NewForConfigOrDie(c.Config()).Discovery().ServerVersion(); err != nil {
			t.Fatalf("%s stopped answering when %s stopped: %v", c.Name, stopped.Name, err)
		}
	}

	// Restart it: same address, same objects, same UIDs.
	if err := stopped.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pids = append(pids, stopped.PIDs()...)
	dyn, mapper := clients(t, stopped.Config())
	for _, obj := range objs {
		live, err := resource(t, dyn, mapper, obj).Get(ctx, obj.GetName(), metav1.GetOptions{})
		if err != nil {
			t.Fatalf("%s after restart: %s %s: %v", stopped.Name, obj.GetKind(), obj.GetName(), err)
		}
		if live.GetUID() != uids[stopped.Name][key(obj)] {
			t.Errorf("%s after restart: %s %s has a new UID: data was not kept", stopped.Name, obj.GetKind(), obj.GetName())
		}
	}

	// The kubeconfig with one context per cluster reaches each cluster.
	path := t.TempDir() + "/kubeconfig"
	if err := env.WriteKubeconfig(path); err != nil {
		t.Fatal(err)
	}
	for _, c := range env.Clusters {
		cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
			&clientcmd.ClientConfigLoadingRules{ExplicitPath: path},
			&clientcmd.ConfigOverrides{CurrentContext: c.Name}).ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Host != c.URL() {
			t.Errorf("context %s points at %s, want %s", c.Name, cfg.Host, c.URL())
		}
		ns, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
		if err != nil || ns.UID != uids[c.Name]["/Namespace/shop"] {
			t.Errorf("context %s: namespace shop = %v, %v", c.Name, ns.UID, err)
		}
	}
}

func TestClustersEnforceAuthenticationAndRBAC(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	env, err := Start(ctx, Options{Clusters: 1, SkipCRDs: true})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	c := env.Clusters[0]

	anon := c.Config()
	anon.CertData, anon.KeyData = nil, nil
	_, err = kubernetes.NewForConfigOrDie(anon).CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) && !apierrors.IsUnauthorized(err) {
		t.Fatalf("anonymous list of secrets: err = %v, want 401 or 403", err)
	}
	user := c.Config()
	user.Impersonate = rest.ImpersonationConfig{UserName: "jane"}
	_, err = kubernetes.NewForConfigOrDie(user).CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("list secrets as a user without roles: err = %v, want 403 from RBAC", err)
	}
	if _, err := kubernetes.NewForConfigOrDie(c.Config()).CoreV1().Secrets("default").List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("admin list secrets: %v", err)
	}
}

// TestProcessesDieWithTestBinary proves that a test binary which is killed, or panics, leaves
// no etcd or kube-apiserver behind.
func TestProcessesDieWithTestBinary(t *testing.T) {
	for _, mode := range []string{"kill", "panic"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), helperEnv+"="+mode, "MESHCD_TESTENV_HELPER_DIR="+t.TempDir())
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pids, err := readPIDs(stdout)
			if err != nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("helper: %v\n%s", err, stderr.String())
			}
			for _, pid := range pids {
				if !Alive(pid) {
					t.Fatalf("helper reported pid %d but it is not running", pid)
				}
			}
			// Only now, with its processes seen running, may the helper die.
			if mode == "kill" {
				_ = cmd.Process.Kill()
			} else {
				_, _ = stdin.Write([]byte("go\n"))
			}
			stdin.Close()
			_ = cmd.Wait()
			assertAllDead(t, pids)
		})
	}
}

func runHelper(mode string) {
	env, err := Start(context.Background(), Options{Clusters: 1, SkipCRDs: true, Dir: os.Getenv("MESHCD_TESTENV_HELPER_DIR")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	fmt.Println("PIDS", strings.Trim(fmt.Sprint(env.Clusters[0].PIDs()), "[]"))
	if mode == "panic" {
		// Wait until the parent has seen the processes running, then die without cleanup.
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		panic("helper panics with a cluster running")
	}
	time.Sleep(time.Hour)
}

func readPIDs(r io.Reader) ([]int, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("no PIDS line: %w", err)
	}
	fields := strings.Fields(line)
	if len(fields) < 3 || fields[0] != "PIDS" {
		return nil, fmt.Errorf("unexpected line %q", line)
	}
	var pids []int
	for _, f := range fields[1:] {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, err
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

func assertAllDead(t *testing.T, pids []int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for _, pid := range pids {
		for Alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d started by testenv is still running", pid)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []*unstructured.Unstructured
	for {
		doc, err := dec.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &obj.Object); err != nil {
			t.Fatal(err)
		}
		if len(obj.Object) > 0 {
			out = append(out, obj)
		}
	}
}

func clients(t *testing.T, cfg *rest.Config) (*dynamic.DynamicClient, meta.RESTMapper) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return dyn, restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
}

func resource(t *testing.T, dyn *dynamic.DynamicClient, mapper meta.RESTMapper, obj *unstructured.Unstructured) dynamic.ResourceInterface {
	t.Helper()
	gvk := obj.GroupVersionKind()
	m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		t.Fatalf("%s: %v", gvk, err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return dyn.Resource(m.Resource).Namespace(obj.GetNamespace())
	}
	return dyn.Resource(m.Resource)
}

func key(obj *unstructured.Unstructured) string {
	return obj.GetNamespace() + "/" + obj.GetKind() + "/" + obj.GetName()
}

// quick shortens a config's timeout for probes of a cluster that is expected to be down.
func quick(cfg *rest.Config) *rest.Config {
	cfg.Timeout = 2 * time.Second
	return cfg
}

// contains reports whether every field of want is in got with the same value (got may hold
// more: the API server adds defaults), and where they first differ.
func contains(got, want any) (string, bool) {
	switch w := want.(type) {
	case nil:
		return "", true
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return "", false
		}
		for k, wv := range w {
			if path, ok := contains(g[k], wv); !ok {
				return "." + k + path, false
			}
		}
		return "", true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return "", false
		}
		for i := range w {
			if path, ok := contains(g[i], w[i]); !ok {
				return "[" + strconv.Itoa(i) + "]" + path, false
			}
		}
		return "", true
	default:
		return "", reflect.DeepEqual(normalizeNumber(got), normalizeNumber(want))
	}
}

func normalizeNumber(v any) any {
	switch n := v.(type) {
	case int64:
		return float64(n)
	case int:
		return float64(n)
	}
	return v
}

// TestLeftoversAreOnlyThisRunsOwn: a cluster started beside a test run (as `make clusters`
// does, without the run's PID folder) is neither reported nor killed by the leftover check;
// one the run started and left running is both.
func TestLeftoversAreOnlyThisRunsOwn(t *testing.T) {
	ctx := t.Context()
	t.Setenv(PIDsEnv, "")
	beside, err := Start(ctx, Options{Names: []string{"beside"}, SkipCRDs: true})
	if err != nil {
		t.Fatal(err)
	}
	defer beside.Stop()
	run := t.TempDir()
	t.Setenv(PIDsEnv, run)
	ours, err := Start(ctx, Options{Names: []string{"ours"}, SkipCRDs: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ours.Stop()
	left, err := Leftovers(run)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, l := range left {
		got = append(got, l.PID)
	}
	want := ours.Clusters[0].PIDs()
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("leftovers %v, want exactly this run's %v (the cluster beside it is %v)", got, want, beside.Clusters[0].PIDs())
	}
	Kill(left)
	for _, pid := range want {
		for deadline := time.Now().Add(10 * time.Second); Alive(pid); {
			if time.Now().After(deadline) {
				t.Fatalf("leftover %d survived the kill", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, pid := range beside.Clusters[0].PIDs() {
		if !Alive(pid) {
			t.Errorf("the cluster beside the run lost process %d", pid)
		}
	}
	if left, _ := Leftovers(run); len(left) != 0 {
		t.Errorf("after the kill: %v", left)
	}
}

// TestStartThatFailsCleansUp: a start that fails part-way (here, its context is already done)
// returns the error and stops what it started, rather than panicking on the env it does not
// return.
func TestStartThatFailsCleansUp(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	dir := t.TempDir()
	env, err := Start(ctx, Options{Clusters: 1, Dir: dir})
	if err == nil || env != nil {
		t.Fatalf("Start with a done context: env %v, err %v; want no env and an error", env, err)
	}
}
