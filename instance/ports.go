package instance

import (
	"net"
	"strconv"
	"sync"

	universe "github.com/universe-orchestrator/universe"
	"github.com/universe-orchestrator/universe/api"
)

// Ports hands out the ports of this host: a port is never given to two
// instances, and a port something else listens on is skipped.
type Ports struct {
	mu    sync.Mutex
	owner map[int]string // port -> instance id
	free  func(int) bool // whether nothing listens on the port
}

// NewPorts returns an allocator; free reports whether a port can be bound
// (nil: try to listen on it).
func NewPorts(free func(port int) bool) *Ports {
	if free == nil {
		free = canListen
	}
	return &Ports{owner: map[int]string{}, free: free}
}

func canListen(port int) bool {
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}

// Allocate gives id the lowest port of r that is neither taken nor in use.
// Errors: EUNAVAILABLE when there is none.
func (p *Ports) Allocate(id string, r api.Ports) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for port := r.Min; port <= r.Max; port++ {
		if _, taken := p.owner[port]; taken {
			continue
		}
		if !p.free(port) {
			continue
		}
		p.owner[port] = id
		return port, nil
	}
	return 0, universe.Errorf(universe.EUNAVAILABLE, "no free port in %d..%d: every port is taken by an instance or in use", r.Min, r.Max)
}

// Reserve marks port as id's (records loaded at start).
func (p *Ports) Reserve(id string, port int) {
	if port == 0 {
		return
	}
	p.mu.Lock()
	p.owner[port] = id
	p.mu.Unlock()
}

// Release frees port if id holds it.
func (p *Ports) Release(id string, port int) {
	p.mu.Lock()
	if p.owner[port] == id {
		delete(p.owner, port)
	}
	p.mu.Unlock()
}
