package daemon

import (
	"net"
	"net/netip"
	"sync"
)

// maxConnsPerSource bounds the connections one client address holds open to the daemon's
// HTTP server at once: a client that opens hundreds (slow requests that never finish their
// headers) must not starve the probes and webhooks of everyone else.
const maxConnsPerSource = 64

// perSourceListener closes, at once, a new connection from an address that already holds max.
type perSourceListener struct {
	net.Listener
	max int

	mu   sync.Mutex
	open map[netip.Addr]int
}

func limitPerSource(l net.Listener, max int) net.Listener {
	return &perSourceListener{Listener: l, max: max, open: map[netip.Addr]int{}}
}

func (l *perSourceListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, perr := netip.ParseAddrPort(c.RemoteAddr().String())
		if perr != nil {
			return c, nil // not an IP address (a unix socket): nothing to count
		}
		src := ap.Addr().Unmap()
		l.mu.Lock()
		if l.open[src] >= l.max {
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.open[src]++
		l.mu.Unlock()
		return &countedConn{Conn: c, release: func() { l.release(src) }}, nil
	}
}

func (l *perSourceListener) release(src netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[src]--; l.open[src] <= 0 {
		delete(l.open, src)
	}
}

// countedConn gives its place back once, when closed.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
