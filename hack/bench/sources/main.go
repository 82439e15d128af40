// Command sources measures meshcd's Git polling against a real Git server: CPU and wall time of
// a poll round over 100 unchanged repos beside `git ls-remote` of the same repos as processes,
// and push-to-notice latency with a webhook and with polling.
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/meshcd/meshcd/internal/testenv"
	"github.com/meshcd/meshcd/sources"
)

func main() {
	n := flag.Int("n", 100, "repos")
	interval := flag.Duration("interval", 2*time.Second, "poll interval for the polling latency")
	flag.Parse()
	if err := run(*n, *interval); err != nil {
		fmt.Fprintln(os.Stderr, "bench sources:", err)
		os.Exit(1)
	}
}

func cpu() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func run(n int, interval time.Duration) error {
	ctx := context.Background()
	srv, err := testenv.StartGitServer(testenv.GitServerOptions{})
	if err != nil {
		return err
	}
	defer srv.Close()
	repos := make([]*testenv.Repo, n)
	for i := range n {
		if repos[i], err = srv.CreateRepo(ctx, fmt.Sprintf("fleet-%d", i)); err != nil {
			return err
		}
		if _, err := repos[i].Push(ctx, "main", map[string][]byte{"a": []byte("1")}, "start"); err != nil {
			return err
		}
	}
	cache, err := os.MkdirTemp("", "meshcd-bench-sources-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(cache)
	p := sources.NewPoller(cache)
	p.Policy.AllowHTTP = true
	round := func() error {
		for _, r := range repos {
			if _, err := p.Poll(ctx, sources.Repo{URL: r.HTTPURL()}, []string{"main"}); err != nil {
				return err
			}
		}
		return nil
	}
	if err := round(); err != nil { // first round fetches
		return err
	}
	srv.ResetRequests()
	const rounds = 3
	c0, t0 := cpu(), time.Now()
	for range rounds {
		if err := round(); err != nil {
			return err
		}
	}
	meshCPU, meshWall := (cpu()-c0)/rounds, time.Since(t0)/rounds
	requests := len(srv.Requests()) / rounds

	var peerCPU time.Duration
	t0 = time.Now()
	for range rounds {
		for _, r := range repos {
			cmd := exec.Command("git", "ls-remote", r.HTTPURL(), "refs/heads/main")
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("git ls-remote: %v: %s", err, out)
			}
			ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
			peerCPU += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	peerCPU, peerWall := peerCPU/rounds, time.Since(t0)/rounds
	fmt.Printf("poll round, %d unchanged repos: meshcd %s CPU, %s wall, %d requests (%.1f per repo), 0 fetches\n", n, meshCPU.Round(time.Millisecond), meshWall.Round(time.Millisecond), requests, float64(requests)/float64(n))
	fmt.Printf("poll round, %d unchanged repos: git ls-remote processes %s CPU, %s wall: meshcd uses %.1fx less CPU, %.1fx less time\n",
		n, peerCPU.Round(time.Millisecond), peerWall.Round(time.Millisecond), peerCPU.Seconds()/meshCPU.Seconds(), peerWall.Seconds()/meshWall.Seconds())

	// Push-to-notice latency with a webhook: the event triggers a poll of that repo at once.
	const secret = "bench"
	target := repos[n/2]
	noticed := make(chan time.Time, 16)
	hook := httptest.NewServer(sources.NewWebhookHandler(sources.DefaultWebhookOptions(sources.GitHub, []byte(secret)), func(ev sources.Event) {
		go func() {
			res, err := p.Poll(ctx, sources.Repo{URL: target.HTTPURL()}, []string{"main"})
			if err == nil && res[0].Changed {
				noticed <- time.Now()
			}
		}()
	}))
	defer hook.Close()
	var webhookLat []time.Duration
	for i := range 10 {
		if _, err := target.Push(ctx, "main", map[string][]byte{"a": []byte(fmt.Sprint("w", i))}, "change"); err != nil {
			return err
		}
		pushed := time.Now()
		body := fmt.Sprintf(`{"ref":"refs/heads/main","repository":{"clone_url":%q}}`, target.HTTPURL())
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(body))
		req, _ := http.NewRequest(http.MethodPost, hook.URL, bytes.NewReader([]byte(body)))
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		select {
		case at := <-noticed:
			webhookLat = append(webhookLat, at.Sub(pushed))
		case <-time.After(10 * time.Second):
			return fmt.Errorf("webhook push %d not noticed", i)
		}
	}

	// The same with polling every interval (all repos each round).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	notice := make(chan time.Time, 16)
	wg.Go(func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for _, r := range repos {
				res, err := p.Poll(ctx, sources.Repo{URL: r.HTTPURL()}, []string{"main"})
				if err == nil && r == target && res[0].Changed {
					notice <- time.Now()
				}
			}
		}
	})
	var pollLat []time.Duration
	for i := range 5 {
		time.Sleep(time.Duration(i) * interval / 5) // spread pushes over the interval
		if _, err := target.Push(ctx, "main", map[string][]byte{"a": []byte(fmt.Sprint("p", i))}, "change"); err != nil {
			return err
		}
		pushed := time.Now()
		select {
		case at := <-notice:
			pollLat = append(pollLat, at.Sub(pushed))
		case <-time.After(4 * interval):
			return fmt.Errorf("polled push %d not noticed", i)
		}
	}
	close(stop)
	wg.Wait()
	med := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	fmt.Printf("push to notice: webhook median %s; polling every %s median %s: the webhook is %.0fx sooner\n",
		med(webhookLat).Round(time.Millisecond), interval, med(pollLat).Round(time.Millisecond), med(pollLat).Seconds()/med(webhookLat).Seconds())
	return nil
}
