package daemon

import (
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestSlowClientsAreClosed: 200 connections from one address that never finish their
// headers: all but the per-source cap are closed at once, the rest within the read-header
// timeout, and /healthz (asked from another address) answers throughout.
func TestSlowClientsAreClosed(t *testing.T) {
	addr := freeAddr(t)
	d := &Daemon{cfg: &Config{Listen: addr}, log: slog.New(slog.DiscardHandler), reg: prometheus.NewRegistry(), readHeaderTimeout: time.Second}
	srv, err := d.serve(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	attacker := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 2 * time.Second}
	var conns []net.Conn
	for range 200 {
		c, err := attacker.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: meshcd\r\nX-Slow: ")); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}

	var healthy, unhealthy atomic.Int64
	stop := make(chan struct{})
	probed := make(chan struct{})
	go func() {
		defer close(probed)
		client := &http.Client{Timeout: time.Second}
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			resp, err := client.Get("http://" + addr + "/healthz")
			if err == nil && resp.StatusCode == 200 {
				healthy.Add(1)
			} else {
				unhealthy.Add(1)
			}
			if err == nil {
				resp.Body.Close()
			}
		}
	}()

	start := time.Now()
	closed := make(chan time.Duration, len(conns))
	for _, c := range conns {
		go func() {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 512)
			for {
				if _, err := c.Read(buf); err != nil {
					closed <- time.Since(start)
					return
				}
			}
		}()
	}
	var atOnce, byTimeout int
	for range conns {
		switch took := <-closed; {
		case took < 500*time.Millisecond:
			atOnce++
		case took < 5*time.Second:
			byTimeout++
		default:
			t.Errorf("a slow connection stayed open %s", took)
		}
	}
	close(stop)
	<-probed
	if atOnce != 200-maxConnsPerSource || byTimeout != maxConnsPerSource {
		t.Errorf("%d closed at once, %d by the read-header timeout; want %d and %d", atOnce, byTimeout, 200-maxConnsPerSource, maxConnsPerSource)
	}
	if healthy.Load() == 0 || unhealthy.Load() != 0 {
		t.Errorf("/healthz answered %d times and failed %d times while the slow clients held on", healthy.Load(), unhealthy.Load())
	}
}
