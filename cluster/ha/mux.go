package ha

import (
	"crypto/tls"

	"github.com/hashicorp/raft"
	"net"
	"sync"
	"time"
)

// One port, two protocols, told apart by the first byte a client sends
// after the TLS handshake (as Consul and Nomad do): Raft's RPCs, and HTTP
// (a follower forwarding a write to the leader, a master asking another
// for its status).
const (
	muxRaft byte = 'R'
	muxHTTP byte = 'H'
)

// mux accepts mutual-TLS connections on one listener and hands each to
// the Raft or the HTTP side by its first byte.
type mux struct {
	ln        net.Listener
	conf      *tls.Config
	raft      *subListener
	http      *subListener
	closeOnce sync.Once
}

func newMux(ln net.Listener, conf *tls.Config) *mux {
	m := &mux{ln: ln, conf: conf}
	m.raft = &subListener{parent: m, conns: make(chan net.Conn, 16), done: make(chan struct{})}
	m.http = &subListener{parent: m, conns: make(chan net.Conn, 16), done: make(chan struct{})}
	go m.serve()
	return m
}

func (m *mux) serve() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			m.close()
			return
		}
		go m.route(c)
	}
}

// route finishes the handshake and reads the first byte, within 10 s
// (a client that stalls holds nothing for longer).
func (m *mux) route(c net.Conn) {
	tc := tls.Server(c, m.conf)
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		_ = c.Close()
		return
	}
	var b [1]byte
	if _, err := tc.Read(b[:]); err != nil {
		_ = tc.Close()
		return
	}
	_ = tc.SetDeadline(time.Time{})
	var to *subListener
	switch b[0] {
	case muxRaft:
		to = m.raft
	case muxHTTP:
		to = m.http
	default:
		_ = tc.Close()
		return
	}
	select {
	case to.conns <- tc:
	case <-to.done:
		_ = tc.Close()
	}
}

func (m *mux) close() {
	m.closeOnce.Do(func() {
		_ = m.ln.Close()
		close(m.raft.done)
		close(m.http.done)
	})
}

// subListener is one protocol's side of the mux.
type subListener struct {
	parent *mux
	conns  chan net.Conn
	done   chan struct{}
}

func (l *subListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *subListener) Close() error   { l.parent.close(); return nil }
func (l *subListener) Addr() net.Addr { return l.parent.ln.Addr() }

// dial opens a mutual-TLS connection to addr for protocol kind.
func dial(addr string, conf *tls.Config, kind byte, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	c, err := tls.DialWithDialer(d, "tcp", addr, conf)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte{kind}); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// streamLayer is Raft's transport over the mux.
type streamLayer struct {
	*subListener
	conf *tls.Config
	adv  net.Addr
}

func (s *streamLayer) Addr() net.Addr { return s.adv }

// Dial opens a connection to a Raft peer (raft.StreamLayer).
func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return dial(string(addr), s.conf, muxRaft, timeout)
}
