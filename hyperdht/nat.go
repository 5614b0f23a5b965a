package hyperdht

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/dhtrelay/dht-relay/dhtrpc"
	"github.com/dhtrelay/dht-relay/udx"
)

// NAT analysis of one holepunch socket, as hyperdht's nat.js: the socket
// pings a few nodes, each answer says where that node saw the socket, and
// the pattern of those addresses tells the NAT's kind. A mapping seen at
// the same address and port by three nodes is consistent; a new port for
// every node is random.
const (
	// natMinSamples is how many answers settle an analysis.
	natMinSamples = 4
	// natSkipRecent is how many of the most recent nodes sampling passes
	// over once the table holds natSkipAbove, as hyperdht does.
	natSkipRecent = 5
	natSkipAbove  = 8
	// natPingTimeout bounds one sampling ping, which is not retried.
	natPingTimeout = time.Second
)

type natSample struct {
	addr netip.AddrPort // port 0 in the host-only list
	hits int
}

type natAnalysis struct {
	d      *dhtrpc.DHT
	socket *udx.Socket

	mu          sync.Mutex
	samplesHost []natSample // by hits, most first
	samplesFull []natSample
	visited     map[netip.AddrPort]int // 1: pinged, 2: answered
	sampled     int
	firewall    uint64
	addresses   []netip.AddrPort
	frozen      bool
	done        chan struct{} // closed once the analysis has a result or gave up
	resolved    bool
	ctx         context.Context // ended by destroy, which stops the pings
	cancel      context.CancelFunc
}

func newNATAnalysis(d *dhtrpc.DHT, socket *udx.Socket) *natAnalysis {
	a := &natAnalysis{d: d, socket: socket, visited: map[netip.AddrPort]int{}, done: make(chan struct{}), firewall: FirewallOpen}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	if d.Firewalled() {
		a.firewall = FirewallUnknown
	}
	go a.autoSample()
	return a
}

// autoSample pings up to natMinSamples recent nodes from the socket, and
// once more with others when too few answered.
func (a *natAnalysis) autoSample() {
	for round := 0; round < 2; round++ {
		nodes := a.d.RecentNodes(64)
		if len(nodes) >= natSkipAbove {
			nodes = nodes[natSkipRecent:]
		}
		var wg sync.WaitGroup
		a.mu.Lock()
		want := natMinSamples - a.sampled
		for _, n := range nodes {
			if want <= 0 {
				break
			}
			if a.visited[n] != 0 {
				continue
			}
			a.visited[n] = 1
			want--
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(a.ctx, natPingTimeout)
				defer cancel()
				if res, err := a.d.PingVia(ctx, a.socket, n); err == nil {
					a.add(res.To, n)
				}
			})
		}
		a.mu.Unlock()
		wg.Wait()
		a.mu.Lock()
		enough := a.sampled >= natMinSamples
		a.mu.Unlock()
		if enough {
			break
		}
	}
	a.resolve()
}

func (a *natAnalysis) resolve() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.resolved {
		a.resolved = true
		close(a.done)
	}
}

// wait returns once the analysis has settled or gave up.
func (a *natAnalysis) wait(ctx context.Context) {
	select {
	case <-a.done:
	case <-ctx.Done():
	}
}

func (a *natAnalysis) destroy() {
	a.cancel()
	a.resolve()
}

func (a *natAnalysis) freeze() {
	a.mu.Lock()
	a.frozen = true
	a.mu.Unlock()
}

// state returns the NAT kind and the addresses to give the peer.
func (a *natAnalysis) state() (uint64, []netip.AddrPort) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.firewall, a.addresses
}

// add records that from saw the socket at seen.
func (a *natAnalysis) add(seen, from netip.AddrPort) {
	a.mu.Lock()
	if a.visited[from] == 2 {
		a.mu.Unlock()
		return
	}
	a.visited[from] = 2
	a.samplesHost = addNATSample(a.samplesHost, netip.AddrPortFrom(seen.Addr(), 0))
	a.samplesFull = addNATSample(a.samplesFull, seen)
	a.sampled++
	if (a.sampled >= 3 || !a.d.Firewalled()) && !a.frozen {
		a.update()
	}
	settled := a.firewall == FirewallConsistent || a.firewall == FirewallOpen || a.sampled >= natMinSamples
	a.mu.Unlock()
	if settled {
		a.resolve()
	}
}

// update classifies the NAT from the samples; mu is held.
func (a *natAnalysis) update() {
	firewalled := a.d.Firewalled()
	if firewalled && a.firewall == FirewallOpen {
		a.firewall = FirewallUnknown
	}
	switch {
	case !firewalled:
		a.firewall = FirewallOpen
	case a.sampled < 3:
	case a.samplesFull[0].hits >= 3:
		a.firewall = FirewallConsistent
	case a.samplesFull[0].hits == 1:
		a.firewall = FirewallRandom
	case len(a.samplesHost) == 1 && a.sampled > 3:
		// Two hits on one port of one host, the others elsewhere.
		a.firewall = FirewallRandom
	case len(a.samplesHost) > 1 && a.samplesFull[1].hits > 1:
		// Two hosts, each seen twice at one port: likely consistent.
		a.firewall = FirewallConsistent
	case a.sampled > 4:
		a.firewall = FirewallRandom
	}
	switch a.firewall {
	case FirewallUnknown:
		a.addresses = nil
	case FirewallRandom:
		a.addresses = []netip.AddrPort{a.samplesHost[0].addr}
	case FirewallConsistent:
		a.addresses = nil
		for _, s := range a.samplesFull {
			if s.hits >= 2 || len(a.addresses) < 2 {
				a.addresses = append(a.addresses, s.addr)
			}
		}
	}
}

// addNATSample counts addr and keeps the list ordered by hits.
func addNATSample(samples []natSample, addr netip.AddrPort) []natSample {
	for i := range samples {
		if samples[i].addr != addr {
			continue
		}
		samples[i].hits++
		for ; i > 0 && samples[i-1].hits < samples[i].hits; i-- {
			samples[i-1], samples[i] = samples[i], samples[i-1]
		}
		return samples
	}
	return append(samples, natSample{addr: addr, hits: 1})
}
