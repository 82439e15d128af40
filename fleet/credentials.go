package fleet

import (
	"context"
	"fmt"
	"os"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Credentials say how to reach one cluster. They come from the daemon's config or the CLI's
// flags, never from the fleet repo. Exactly one of Kubeconfig, InCluster or Secret is used.
type Credentials struct {
	// Kubeconfig is a kubeconfig file; Context picks a context in it (default: the file's
	// current context).
	Kubeconfig string `json:"kubeconfig,omitempty"`
	Context    string `json:"context,omitempty"`
	// InCluster uses the service account of the pod meshcd runs in.
	InCluster bool `json:"inCluster,omitempty"`
	// Secret is a Secret in meshcd's home cluster holding a kubeconfig.
	Secret *SecretRef `json:"secret,omitempty"`
	// AllowExec permits exec and auth-provider credential plugins, which run programs named
	// by the kubeconfig. Off by default: a kubeconfig is then data, never code.
	AllowExec bool `json:"allowExec,omitempty"`
	// AllowInsecure permits a kubeconfig that skips TLS verification.
	AllowInsecure bool `json:"allowInsecure,omitempty"`
}

// SecretRef names a key of a Secret holding a kubeconfig (key default "value").
type SecretRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Key       string `json:"key,omitempty"`
}

// RESTConfig resolves the credentials for the named cluster. home reaches meshcd's own
// cluster and is needed only for Secret credentials.
func (cr Credentials) RESTConfig(ctx context.Context, cluster string, home *rest.Config) (*rest.Config, error) {
	switch {
	case cr.InCluster:
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("cluster %s: in-cluster credentials: %w", cluster, err)
		}
		return cfg, nil
	case cr.Secret != nil:
		if home == nil {
			return nil, fmt.Errorf("cluster %s: credentials in Secret %s/%s need meshcd's home cluster", cluster, cr.Secret.Namespace, cr.Secret.Name)
		}
		cs, err := kubernetes.NewForConfig(home)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: %w", cluster, err)
		}
		s, err := cs.CoreV1().Secrets(cr.Secret.Namespace).Get(ctx, cr.Secret.Name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("cluster %s: reading Secret %s/%s: %w", cluster, cr.Secret.Namespace, cr.Secret.Name, err)
		}
		key := cr.Secret.Key
		if key == "" {
			key = "value"
		}
		data, ok := s.Data[key]
		if !ok {
			return nil, fmt.Errorf("cluster %s: Secret %s/%s has no key %q", cluster, cr.Secret.Namespace, cr.Secret.Name, key)
		}
		return cr.fromKubeconfig(cluster, "Secret "+cr.Secret.Namespace+"/"+cr.Secret.Name, data)
	case cr.Kubeconfig != "":
		data, err := os.ReadFile(cr.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: %w", cluster, err)
		}
		return cr.fromKubeconfig(cluster, cr.Kubeconfig, data)
	}
	return nil, fmt.Errorf("cluster %s: no credentials: give a kubeconfig, inCluster or a Secret", cluster)
}

// fromKubeconfig reads a kubeconfig's context, refusing plugins and insecure TLS unless
// allowed. Errors name the cluster, where the kubeconfig came from and the offending user or
// server, never a token or key.
func (cr Credentials) fromKubeconfig(cluster, source string, data []byte) (*rest.Config, error) {
	raw, err := clientcmd.Load(data)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: kubeconfig %s: %w", cluster, source, err)
	}
	name := cr.Context
	if name == "" {
		name = raw.CurrentContext
	}
	kctx, ok := raw.Contexts[name]
	if !ok || name == "" {
		return nil, fmt.Errorf("cluster %s: kubeconfig %s has no context %q", cluster, source, name)
	}
	if err := cr.check(cluster, source, raw, kctx); err != nil {
		return nil, err
	}
	cfg, err := clientcmd.NewNonInteractiveClientConfig(*raw, name, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("cluster %s: kubeconfig %s context %q: %w", cluster, source, name, err)
	}
	return cfg, nil
}

func (cr Credentials) check(cluster, source string, raw *clientcmdapi.Config, kctx *clientcmdapi.Context) error {
	if user, ok := raw.AuthInfos[kctx.AuthInfo]; ok && !cr.AllowExec {
		if user.Exec != nil {
			return fmt.Errorf("cluster %s: kubeconfig %s user %q runs an exec credential plugin (%s); set allowExec to permit it", cluster, source, kctx.AuthInfo, user.Exec.Command)
		}
		if user.AuthProvider != nil {
			return fmt.Errorf("cluster %s: kubeconfig %s user %q uses auth provider %q; set allowExec to permit it", cluster, source, kctx.AuthInfo, user.AuthProvider.Name)
		}
	}
	if c, ok := raw.Clusters[kctx.Cluster]; ok && c.InsecureSkipTLSVerify && !cr.AllowInsecure {
		return fmt.Errorf("cluster %s: kubeconfig %s cluster %q skips TLS verification; set allowInsecure to permit it", cluster, source, kctx.Cluster)
	}
	return nil
}
