package testenv

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ContourOptions say how to run Contour against a test cluster.
type ContourOptions struct {
	// ExternalNameServices turns on Contour's enableExternalNameService, which upstreams
	// outside the cluster need. Contour's default is off.
	ExternalNameServices bool
	// Gateway, as namespace/name, makes this Contour the Gateway API controller of that one
	// Gateway (Contour's static provisioning); empty: Contour reads HTTPProxy only.
	Gateway string
	// DisableFeatures are passed to --disable-feature (e.g. tlsroutes, backendtlspolicies), for
	// kinds whose served versions the cluster's Gateway API CRDs do not have.
	DisableFeatures []string
}

// Contour is a running `contour serve`: the real Contour controller, built from its Go module
// by `make testbin`, watching one test cluster. It writes HTTPProxy and Gateway API statuses
// there and serves the Envoy configuration it computes over xDS on loopback (plaintext), which
// Routes and Clusters read as Envoy would.
type Contour struct {
	// XDS is the host:port of Contour's xDS gRPC server.
	XDS string

	bin  string
	proc *process
}

// StartContour starts Contour for the cluster, with leader election off and every port on
// loopback, and waits until it reports healthy. Close stops it.
func (c *Cluster) StartContour(ctx context.Context, opts ContourOptions) (*Contour, error) {
	bin, err := testBinary("contour")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(c.dir, "contour-")
	if err != nil {
		return nil, err
	}
	var cfg strings.Builder
	if opts.ExternalNameServices {
		cfg.WriteString("enableExternalNameService: true\n")
	}
	if ns, name, ok := strings.Cut(opts.Gateway, "/"); ok {
		fmt.Fprintf(&cfg, "gateway:\n  gatewayRef:\n    namespace: %s\n    name: %s\n", ns, name)
	}
	cfgPath := filepath.Join(dir, "contour.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		return nil, err
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	args := []string{"serve",
		"--kubeconfig=" + c.KubeconfigPath,
		"--config-path=" + cfgPath,
		"--disable-leader-election",
		"--insecure",
		"--xds-address=127.0.0.1", "--xds-port=" + strconv.Itoa(ports[0]),
		"--http-address=127.0.0.1", "--http-port=" + strconv.Itoa(ports[1]),
		"--health-address=127.0.0.1", "--health-port=" + strconv.Itoa(ports[2]),
		"--debug-http-address=127.0.0.1", "--debug-http-port=" + strconv.Itoa(ports[3]),
	}
	for _, f := range opts.DisableFeatures {
		args = append(args, "--disable-feature="+f)
	}
	p, err := startProcess(c.Name+" contour", bin, args, filepath.Join(dir, "contour.log"))
	if err != nil {
		return nil, err
	}
	ct := &Contour{XDS: "127.0.0.1:" + strconv.Itoa(ports[0]), bin: bin, proc: p}
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	health := "http://127.0.0.1:" + strconv.Itoa(ports[2]) + "/healthz"
	if err := waitUntil(startCtx, p, func(ctx context.Context) bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, health, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}); err != nil {
		p.stop(5 * time.Second)
		return nil, err
	}
	return ct, nil
}

// Close stops Contour.
func (ct *Contour) Close() { ct.proc.stop(5 * time.Second) }

// Log returns the end of Contour's log, for failure messages.
func (ct *Contour) Log() string { return ct.proc.logTail(4000) }

// Routes returns the route configurations Contour serves to Envoy (RDS), as JSON objects in
// Envoy's own field names (virtual_hosts, routes, match, route, ...).
func (ct *Contour) Routes(ctx context.Context) ([]map[string]any, error) {
	return ct.discover(ctx, "rds")
}

// Clusters returns the upstream clusters Contour serves to Envoy (CDS).
func (ct *Contour) Clusters(ctx context.Context) ([]map[string]any, error) {
	return ct.discover(ctx, "cds")
}

// discover runs `contour cli <kind>`, which subscribes to Contour's xDS like Envoy does and
// prints every response as JSON, and returns the resources of the first response.
func (ct *Contour) discover(ctx context.Context, kind string) ([]map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ct.bin, "cli", kind, "--contour="+ct.XDS, "--log-format=json")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	_ = cmd.Run() // it streams until the deadline
	// The output alternates the CLI's requests and Contour's responses; the first response
	// is the one with a nonce.
	dec := json.NewDecoder(&out)
	var resp struct {
		Nonce     string           `json:"nonce"`
		Resources []map[string]any `json:"resources"`
	}
	for resp.Nonce == "" {
		if err := dec.Decode(&resp); err != nil {
			return nil, fmt.Errorf("contour cli %s: no response (%v): %s", kind, err, errOut.String())
		}
	}
	for _, r := range resp.Resources {
		delete(r, "@type")
	}
	return resp.Resources, nil
}

// testBinary finds a binary `make testbin` built into the test binary folder.
func testBinary(name string) (string, error) {
	dir, err := binDir("")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, name)
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("test binary %s is missing: run `make testbin controlplanes` (or set %s): %w", bin, BinDirEnv, err)
	}
	return bin, nil
}

// CreateTLSSecret puts a kubernetes.io/tls Secret for the hosts into the cluster, as an
// operator (or cert-manager) would before routes use it: a fresh self-signed certificate.
func (c *Cluster) CreateTLSSecret(ctx context.Context, namespace, name string, hosts ...string) error {
	cert, key, err := selfSigned(&x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0]},
		DNSNames:    hosts,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return err
	}
	return c.createSecret(ctx, namespace, name, corev1.SecretTypeTLS, map[string][]byte{"tls.crt": cert, "tls.key": key})
}

// CreateCASecret creates a Secret holding a new certificate authority's certificate under
// ca.crt, as a host that checks client certificates names it.
func (c *Cluster) CreateCASecret(ctx context.Context, namespace, name string) error {
	cert, _, err := selfSigned(&x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	})
	if err != nil {
		return err
	}
	return c.createSecret(ctx, namespace, name, corev1.SecretTypeOpaque, map[string][]byte{"ca.crt": cert})
}

// selfSigned signs the template with a new key, valid from an hour ago for a day, and returns
// the certificate and the key in PEM.
func selfSigned(tmpl *x509.Certificate) (cert, key []byte, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now().Add(-time.Hour)
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore, tmpl.NotAfter = now, now.Add(24*time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, nil, err
	}
	return pemBlock("CERTIFICATE", der), pemBlock("EC PRIVATE KEY", keyDER), nil
}

// createSecret creates a Secret, and its namespace when there is none yet.
func (c *Cluster) createSecret(ctx context.Context, namespace, name string, typ corev1.SecretType, data map[string][]byte) error {
	cs, err := kubernetes.NewForConfig(c.Config())
	if err != nil {
		return err
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	_, err = cs.CoreV1().Secrets(namespace).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Type: typ, Data: data}, metav1.CreateOptions{})
	return err
}
