// Command devenv starts local test clusters (real etcd + kube-apiserver with the mesh CRDs) and,
// optionally, a local Git server holding a repo seeded from a folder, prints how to reach them,
// and keeps them running until interrupted. With -gitea it starts a real Git host instead (Gitea,
// as built by make testbin) holding the seeded repo. `make clusters` and `make demo` use it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"fortio.org/fortio/fhttp"
	"github.com/meshcd/meshcd/internal/testenv"
)

func main() {
	n := flag.Int("n", 3, "number of clusters")
	names := flag.String("names", "", "comma-separated cluster names (default c1,c2,...)")
	kubeconfig := flag.String("kubeconfig", "bin/devenv/kubeconfig", "where to write the kubeconfig with one context per cluster")
	seed := flag.String("seed", "", "a folder to push as the first commit of a Git repo named fleet")
	info := flag.String("info", "", "a file to write KEY=VALUE lines to once everything is ready (for scripts)")
	echo := flag.String("echo", "", "instead of clusters, serve fortio's echo server (?delay=, ?status=) on this loopback address")
	echoDelay := flag.Duration("echo-delay", 0, "with -echo: answer every request this much later (a slower version of a service)")
	echoKey := flag.String("echo-key", "ECHO_URL", "with -echo: the name of the URL in the info file")
	gitea := flag.Bool("gitea", false, "instead of clusters, start a Gitea (admin, token) holding -seed as the repo fleet")
	flag.Parse()
	if *gitea {
		if err := serveGitea(*seed, *info); err != nil {
			fmt.Fprintln(os.Stderr, "devenv:", err)
			os.Exit(1)
		}
		return
	}
	if *echo != "" {
		if err := serveEcho(*echo, *info, *echoKey, *echoDelay); err != nil {
			fmt.Fprintln(os.Stderr, "devenv:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*n, *names, *kubeconfig, *seed, *info); err != nil {
		fmt.Fprintln(os.Stderr, "devenv:", err)
		os.Exit(1)
	}
}

// serveEcho serves fortio's echo handler, a gate target whose latency and errors a query
// string sets, each answer delay later, until interrupted.
func serveEcho(addr, info, key string, delay time.Duration) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	url := "http://" + l.Addr().String()
	if info != "" {
		if err := os.WriteFile(info, []byte(key+"="+url+"\n"), 0o644); err != nil {
			return err
		}
	}
	fmt.Println("echo server on", url)
	return http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		fhttp.EchoHandler(w, r)
	}))
}

// serveGitea starts a Gitea on loopback with a repo seeded from a folder, writes how to reach
// it (web and API root, admin, token, repo) to info, and keeps it until interrupted.
func serveGitea(seed, info string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	host, err := testenv.StartGitHost(ctx, testenv.GitHostOptions{})
	if err != nil {
		return err
	}
	defer host.Close()
	repo, err := host.CreateRepo(ctx, "fleet")
	if err != nil {
		return err
	}
	if seed != "" {
		files, err := readTree(seed)
		if err != nil {
			return err
		}
		if _, err := repo.Push(ctx, "main", files, "seed from "+seed); err != nil {
			return err
		}
	}
	fmt.Printf("gitea on %s (admin %s), repo %s\n", host.URL, host.User, repo.CloneURL())
	if info != "" {
		lines := []string{"GITEA_URL=" + host.URL, "GITEA_USER=" + host.User, "GITEA_PASSWORD=" + host.Password, "GITEA_TOKEN=" + host.Token,
			"GITEA_REPO=" + repo.Path(), "GITEA_CLONE_URL=" + repo.CloneURL()}
		if err := os.WriteFile(info, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return nil
}

func run(n int, names, kubeconfig, seed, info string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := testenv.Options{Clusters: n}
	if names != "" {
		opts.Names = strings.Split(names, ",")
		opts.Clusters = len(opts.Names)
	}
	start := time.Now()
	fmt.Printf("starting %d clusters (etcd + kube-apiserver, with Istio, Gateway API, Linkerd and Contour CRDs)...\n", opts.Clusters)
	env, err := testenv.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer env.Stop()
	if err := os.MkdirAll(filepath.Dir(kubeconfig), 0o755); err != nil {
		return err
	}
	abs, _ := filepath.Abs(kubeconfig)
	if err := env.WriteKubeconfig(abs); err != nil {
		return err
	}
	lines := []string{"KUBECONFIG=" + abs}
	fmt.Printf("clusters ready in %s:\n", time.Since(start).Round(time.Millisecond))
	for _, c := range env.Clusters {
		fmt.Printf("  %-8s %s   kubectl --kubeconfig %s --context %s get ns\n", c.Name, c.URL(), abs, c.Name)
	}
	if seed != "" {
		srv, err := testenv.StartGitServer(testenv.GitServerOptions{})
		if err != nil {
			return err
		}
		defer srv.Close()
		repo, err := srv.CreateRepo(ctx, "fleet")
		if err != nil {
			return err
		}
		files, err := readTree(seed)
		if err != nil {
			return err
		}
		rev, err := repo.Push(ctx, "main", files, "seed from "+seed)
		if err != nil {
			return err
		}
		fmt.Printf("git repo %s (main at %s, %d files from %s)\n", repo.HTTPURL(), rev[:12], len(files), seed)
		lines = append(lines, "GIT_URL="+repo.HTTPURL(), "GIT_DIR_BARE="+repo.Dir)
	}
	if info != "" {
		if err := os.WriteFile(info, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("export KUBECONFIG=%s\nrunning; press Ctrl-C to stop and remove everything.\n", abs)
	<-ctx.Done()
	fmt.Println("stopping...")
	return nil
}

func readTree(root string) (map[string][]byte, error) {
	files := map[string][]byte{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = data
		return nil
	})
	return files, err
}
