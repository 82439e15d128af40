package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Options says what test environment to start.
type Options struct {
	// Clusters is how many independent clusters to start (default 1).
	Clusters int
	// Names names the clusters; by default they are c1, c2, ...
	Names []string
	// SkipCRDs leaves out the Istio, Gateway API, Linkerd and Contour CRDs, for tests that only
	// need core kinds and want a faster start.
	SkipCRDs bool
	// BinDir holds the etcd and kube-apiserver binaries (default: see BinDirEnv).
	BinDir string
	// Dir keeps the clusters' data, certificates, logs and kubeconfigs. By default a temporary
	// folder that Stop removes; a given Dir is left in place.
	Dir string
	// StartTimeout bounds how long one cluster may take to become ready (default 2 minutes,
	// generous because several apiservers starting at once share two cores).
	StartTimeout time.Duration
}

// Env is a running set of test clusters.
type Env struct {
	Clusters []*Cluster

	dir       string
	removeDir bool
}

// Cluster is one real etcd plus kube-apiserver with authentication and RBAC on. Tests act as
// a cluster admin through a client certificate.
type Cluster struct {
	// Name is the cluster's name and its kubeconfig context.
	Name string
	// KubeconfigPath is a kubeconfig file with one context, Name, for this cluster.
	KubeconfigPath string

	bins         binaries
	pki          *pki
	dir          string
	etcdPort     int
	peerPort     int
	apiPort      int
	startTimeout time.Duration

	mu        sync.Mutex
	etcd      *process
	apiserver *process
}

// Start starts the clusters concurrently, waits until each serves /readyz, and installs the
// CRDs meshcd renders to (waiting until they are Established). On error everything already
// started is stopped.
func Start(ctx context.Context, opts Options) (env *Env, err error) {
	if opts.Clusters <= 0 {
		opts.Clusters = max(1, len(opts.Names))
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 2 * time.Minute
	}
	bins, err := findBinaries(opts.BinDir)
	if err != nil {
		return nil, err
	}
	env = &Env{dir: opts.Dir}
	if env.dir == "" {
		if env.dir, err = os.MkdirTemp("", "meshcd-testenv-"); err != nil {
			return nil, err
		}
		env.removeDir = true
	}
	// A failed start returns a nil env, so the cleanup holds its own reference to what it
	// started.
	started := env
	defer func() {
		if err != nil {
			started.Stop()
		}
	}()
	p, err := newPKI(env.dir)
	if err != nil {
		return nil, fmt.Errorf("creating test certificates: %w", err)
	}
	for i := range opts.Clusters {
		name := "c" + strconv.Itoa(i+1)
		if i < len(opts.Names) {
			name = opts.Names[i]
		}
		c := &Cluster{Name: name, bins: bins, pki: p, dir: filepath.Join(env.dir, name), startTimeout: opts.StartTimeout}
		if err := os.MkdirAll(c.dir, 0o700); err != nil {
			return nil, err
		}
		ports, err := freePorts(3)
		if err != nil {
			return nil, err
		}
		c.etcdPort, c.peerPort, c.apiPort = ports[0], ports[1], ports[2]
		c.KubeconfigPath = filepath.Join(c.dir, "kubeconfig")
		if err := writeKubeconfig(c.KubeconfigPath, []*Cluster{c}); err != nil {
			return nil, err
		}
		env.Clusters = append(env.Clusters, c)
	}
	errs := make([]error, len(env.Clusters))
	var wg sync.WaitGroup
	for i, c := range env.Clusters {
		wg.Go(func() {
			if errs[i] = c.Start(ctx); errs[i] != nil {
				return
			}
			if !opts.SkipCRDs {
				errs[i] = InstallCRDs(ctx, c.Config())
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return env, nil
}

// Cluster returns the cluster with this name, or nil.
func (e *Env) Cluster(name string) *Cluster {
	for _, c := range e.Clusters {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Stop stops every cluster and removes the environment's folder unless the caller chose it.
// It is safe to call more than once.
func (e *Env) Stop() {
	var wg sync.WaitGroup
	for _, c := range e.Clusters {
		wg.Go(c.Stop)
	}
	wg.Wait()
	if e.removeDir {
		os.RemoveAll(e.dir)
	}
}

// WriteKubeconfig writes one kubeconfig with a context per cluster, named like the cluster.
func (e *Env) WriteKubeconfig(path string) error {
	return writeKubeconfig(path, e.Clusters)
}

// Config returns a fresh client configuration for the cluster, as cluster admin. Its rate
// limits are far above client-go's defaults so tests measure meshcd, not the limiter.
func (c *Cluster) Config() *rest.Config {
	return &rest.Config{
		Host: c.URL(),
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   c.pki.caPEM,
			CertData: c.pki.adminCertPEM,
			KeyData:  c.pki.adminKeyPEM,
		},
		QPS:   500,
		Burst: 1000,
	}
}

// URL is the address the cluster's apiserver serves on.
func (c *Cluster) URL() string { return "https://127.0.0.1:" + strconv.Itoa(c.apiPort) }

// Start (re)starts the cluster's etcd and kube-apiserver on the same ports and data as before,
// and waits until the apiserver is ready. Starting a running cluster does nothing.
func (c *Cluster) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.apiserver != nil {
		if ended, _ := c.apiserver.exited(); !ended {
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(ctx, c.startTimeout)
	defer cancel()
	if err := c.startEtcd(ctx); err != nil {
		return err
	}
	if err := c.startAPIServer(ctx); err != nil {
		return err
	}
	return nil
}

// Stop stops the apiserver, then etcd, keeping their data for a later Start.
func (c *Cluster) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.apiserver != nil {
		c.apiserver.stop(10 * time.Second)
	}
	if c.etcd != nil {
		c.etcd.stop(10 * time.Second)
	}
}

// Pause freezes the cluster's apiserver (SIGSTOP): connections stay open and requests hang
// unanswered, as with an apiserver that stopped responding. Resume thaws it.
func (c *Cluster) Pause() { c.signal(syscall.SIGSTOP) }

// Resume thaws a paused apiserver (SIGCONT).
func (c *Cluster) Resume() { c.signal(syscall.SIGCONT) }

func (c *Cluster) signal(sig syscall.Signal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.apiserver != nil {
		_ = c.apiserver.cmd.Process.Signal(sig)
	}
}

// PIDs returns the process IDs of the cluster's etcd and apiserver as last started.
func (c *Cluster) PIDs() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var pids []int
	for _, p := range []*process{c.etcd, c.apiserver} {
		if p != nil {
			pids = append(pids, p.cmd.Process.Pid)
		}
	}
	return pids
}

func (c *Cluster) startEtcd(ctx context.Context) error {
	peer := "http://127.0.0.1:" + strconv.Itoa(c.peerPort)
	client := "http://127.0.0.1:" + strconv.Itoa(c.etcdPort)
	args := []string{
		"--name=" + c.Name,
		"--data-dir=" + filepath.Join(c.dir, "etcd"),
		"--listen-client-urls=" + client,
		"--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=" + c.Name + "=" + peer,
		"--unsafe-no-fsync=true",
		"--log-level=warn",
	}
	p, err := startProcess(c.Name+" etcd", c.bins.etcd, args, filepath.Join(c.dir, "etcd.log"))
	if err != nil {
		return err
	}
	c.etcd = p
	return waitUntil(ctx, p, func(ctx context.Context) bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, client+"/health", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func (c *Cluster) startAPIServer(ctx context.Context) error {
	args := []string{
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(c.apiPort),
		"--etcd-servers=http://127.0.0.1:" + strconv.Itoa(c.etcdPort),
		"--cert-dir=" + filepath.Join(c.dir, "apiserver-certs"),
		"--tls-cert-file=" + c.pki.servingCertFile,
		"--tls-private-key-file=" + c.pki.servingKeyFile,
		"--client-ca-file=" + c.pki.caFile,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + c.pki.saKeyFile,
		"--service-account-signing-key-file=" + c.pki.saKeyFile,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--allow-privileged=true",
		"--endpoint-reconciler-type=none",
		"--profiling=false",
	}
	p, err := startProcess(c.Name+" kube-apiserver", c.bins.apiserver, args, filepath.Join(c.dir, "kube-apiserver.log"))
	if err != nil {
		return err
	}
	c.apiserver = p
	cs, err := kubernetes.NewForConfig(c.Config())
	if err != nil {
		return err
	}
	return waitUntil(ctx, p, func(ctx context.Context) bool {
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok"
	})
}

// waitUntil polls ready until it holds, the process exits (an error with its log's tail) or
// ctx ends.
func waitUntil(ctx context.Context, p *process, ready func(context.Context) bool) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if ended, err := p.exited(); ended {
			return fmt.Errorf("%s exited during start-up (%v); log %s ends:\n%s", p.name, err, p.logPath, p.logTail(4000))
		}
		probeCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ok := ready(probeCtx)
		cancel()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w; log %s ends:\n%s", p.name, ctx.Err(), p.logPath, p.logTail(4000))
		case <-tick.C:
		}
	}
}

func writeKubeconfig(path string, clusters []*Cluster) error {
	cfg := clientcmdapi.NewConfig()
	for _, c := range clusters {
		cfg.Clusters[c.Name] = &clientcmdapi.Cluster{Server: c.URL(), CertificateAuthorityData: c.pki.caPEM}
		cfg.AuthInfos[c.Name] = &clientcmdapi.AuthInfo{ClientCertificateData: c.pki.adminCertPEM, ClientKeyData: c.pki.adminKeyPEM}
		cfg.Contexts[c.Name] = &clientcmdapi.Context{Cluster: c.Name, AuthInfo: c.Name}
	}
	if len(clusters) > 0 {
		cfg.CurrentContext = clusters[0].Name
	}
	return clientcmd.WriteToFile(*cfg, path)
}
