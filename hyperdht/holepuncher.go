package hyperdht

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/dhtrelay/dht-relay/udx"
)

// Holepunching, as hyperdht's holepuncher.js: each side punches from
// sockets of its own (not the node's), whose NAT mappings it analyses
// first. Two consistent NATs ping each other's mapped addresses until one
// ping gets through. Against a random NAT the consistent side sprays pings
// at random ports of the random side's host while the random side opens up
// to birthdaySockets mappings towards the consistent side's address: with
// 256 mappings among 64,536 ports, a few hundred probes find one. The
// initiator (the client) takes the first ping that reaches it as the
// connection; the other side answers every ping it receives.
const (
	// birthdaySockets is how many sockets a random NAT's side opens.
	birthdaySockets = 256
	// lowTTL is the time to live of pings meant only to open a mapping in
	// our own NAT, not to reach the peer's.
	lowTTL = 5
	// maxReopens bounds how often an unstable socket is replaced.
	maxReopens = 3
	// consistentTries, a second apart, bound a consistent punch; random
	// probes are randomTries, randomInterval apart (about 35 s).
	consistentTries = 10
	randomTries     = 1750
	randomInterval  = 20 * time.Millisecond
	// randomPunchInterval is the least time between random punches of one
	// node, which are costly to the NATs on the way.
	randomPunchInterval = 20 * time.Second
)

var holepunchPing = []byte{0}

// errPunchOver means the puncher connected or was destroyed meanwhile.
var errPunchOver = errors.New("hyperdht: holepunch over")

type remoteAddr struct {
	addr     netip.AddrPort
	verified bool
}

type puncher struct {
	n         *Node
	initiator bool
	// onConnect (initiator) gets the socket and address of the first ping
	// that came through; onAbort is called when punching gave up. Neither
	// is called after destroy.
	onConnect func(*udx.Socket, netip.AddrPort)
	onAbort   func()

	mu             sync.Mutex
	sockets        []*udx.Socket // open sockets; main among them until the end
	main           *udx.Socket   // the analysed socket
	nat            *natAnalysis
	remoteFirewall uint64
	remoteAddrs    []remoteAddr
	remotePunching bool
	punching       bool
	connected      bool
	destroyed      bool
	randomized     bool
	punchStarted   bool
	punchResult    bool
	stop           chan struct{} // closed by destroy
}

func (n *Node) newPuncher(initiator bool, remoteFirewall uint64, onConnect func(*udx.Socket, netip.AddrPort), onAbort func()) (*puncher, error) {
	p := &puncher{n: n, initiator: initiator, remoteFirewall: remoteFirewall, onConnect: onConnect, onAbort: onAbort, stop: make(chan struct{})}
	s, err := p.addSocket()
	if err != nil {
		return nil, err
	}
	p.main = s
	p.nat = newNATAnalysis(n.d(), s)
	return p, nil
}

// addSocket binds one more socket whose pings reach the puncher.
func (p *puncher) addSocket() (*udx.Socket, error) {
	s, err := p.n.newSocket(p.onPing)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.destroyed || p.connected {
		p.n.closeSocket(s)
		return nil, errPunchOver
	}
	p.sockets = append(p.sockets, s)
	return s, nil
}

// socket is the analysed socket, which answers rounds and probes; after
// the end it is closed, and what is sent on it goes nowhere.
func (p *puncher) socket() *udx.Socket {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.main
}

func (p *puncher) analysis() *natAnalysis {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nat
}

func (p *puncher) onPing(s *udx.Socket, from netip.AddrPort) {
	if !p.initiator {
		s.Send(holepunchPing, from)
		return
	}
	p.mu.Lock()
	if p.connected || p.destroyed {
		p.mu.Unlock()
		return
	}
	p.connected, p.punching = true, false
	p.releaseExcept(s)
	p.endRandomized()
	close(p.stop)
	onConnect, nat := p.onConnect, p.nat
	p.mu.Unlock()
	nat.destroy()
	onConnect(s, from)
}

// releaseExcept closes every socket but keep (nil: all), which stays
// alone in sockets if it was one of them, as it reports; mu is held.
func (p *puncher) releaseExcept(keep *udx.Socket) bool {
	kept := false
	for _, s := range p.sockets {
		if s == keep {
			kept = true
		} else {
			p.n.closeSocket(s)
		}
	}
	p.sockets = p.sockets[:0]
	if kept {
		p.sockets = append(p.sockets, keep)
	}
	return kept
}

// keep stops punching and closes the sockets except s, on which the
// connection now runs; it reports whether s was one of them (the
// connection then owns it).
func (p *puncher) keep(s *udx.Socket) bool {
	p.mu.Lock()
	if p.destroyed {
		p.mu.Unlock()
		return false
	}
	// A ping that connected the punch (onPing) has stopped it already.
	stopped := p.connected
	p.destroyed, p.punching = true, false
	kept := p.releaseExcept(s)
	p.sockets = nil // s is the connection's now
	if stopped {
		p.mu.Unlock()
		return kept
	}
	p.endRandomized()
	close(p.stop)
	nat := p.nat
	p.mu.Unlock()
	nat.destroy()
	return kept
}

// destroy stops punching and closes the sockets; onAbort runs unless the
// punch connected or abort is false.
func (p *puncher) destroy(abort bool) {
	p.mu.Lock()
	if p.destroyed {
		p.mu.Unlock()
		return
	}
	p.destroyed, p.punching = true, false
	connected := p.connected
	if !connected {
		p.releaseExcept(nil)
		close(p.stop)
	}
	p.endRandomized()
	onAbort, nat := p.onAbort, p.nat
	p.mu.Unlock()
	nat.destroy()
	if abort && !connected && onAbort != nil {
		onAbort()
	}
}

func (p *puncher) done() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.destroyed || p.connected
}

// updateRemote takes what the peer said of itself in a holepunch round;
// verified is the host the peer proved it saw us from, if any.
func (p *puncher) updateRemote(punching bool, firewall uint64, addrs []netip.AddrPort, verified netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var next []remoteAddr
	for _, a := range addrs {
		v := verified.IsValid() && a.Addr() == verified
		for _, o := range p.remoteAddrs {
			v = v || (o.verified && o.addr.Addr() == a.Addr())
		}
		next = append(next, remoteAddr{addr: a, verified: v})
	}
	p.remoteFirewall, p.remoteAddrs, p.remotePunching = firewall, next, punching
}

func (p *puncher) remote() (firewall uint64, punching bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.remoteFirewall, p.remotePunching
}

// ping sends one ping from the analysed socket.
func (p *puncher) ping(to netip.AddrPort) { p.socket().Send(holepunchPing, to) }

// openSession sends a low-TTL ping that opens our NAT's mapping to to.
func (p *puncher) openSession(to netip.AddrPort) { p.socket().SendTTL(holepunchPing, to, lowTTL) }

// analyze waits for the NAT analysis and reports whether the socket is
// stable enough to punch from; with reopen, an unstable socket is replaced
// (at most maxReopens times) and stability is judged again.
func (p *puncher) analyze(ctx context.Context, reopen bool) bool {
	p.analysis().wait(ctx)
	if !p.unstable() {
		return true
	}
	if !reopen {
		return false
	}
	for i := 0; p.unstable() && i < maxReopens && !p.done() && ctx.Err() == nil; i++ {
		if !p.reopen() {
			break
		}
		p.analysis().wait(ctx)
	}
	fw, _ := p.analysis().state()
	return coerceFirewall(fw) == FirewallConsistent
}

func (p *puncher) unstable() bool {
	fw, _ := p.analysis().state()
	p.mu.Lock()
	defer p.mu.Unlock()
	return (p.remoteFirewall >= FirewallRandom && fw >= FirewallRandom) || fw == FirewallUnknown
}

// reopen replaces the analysed socket with a fresh one.
func (p *puncher) reopen() bool {
	p.mu.Lock()
	if p.punching || p.destroyed || p.connected {
		p.mu.Unlock()
		return false
	}
	old, oldNAT := p.main, p.nat
	p.sockets = slices.DeleteFunc(p.sockets, func(s *udx.Socket) bool { return s == old })
	p.mu.Unlock()
	oldNAT.destroy()
	p.n.closeSocket(old)
	s, err := p.addSocket()
	if err != nil {
		return false
	}
	p.mu.Lock()
	p.main = s
	p.nat = newNATAnalysis(p.n.d(), s)
	p.mu.Unlock()
	return true
}

// punch starts punching, once; it reports whether punching can work with
// the NATs on both sides and runs the punch in the background.
func (p *puncher) punch() bool {
	p.mu.Lock()
	if p.punchStarted {
		defer p.mu.Unlock()
		return p.punchResult
	}
	p.punchStarted = true
	p.mu.Unlock()
	ok := p.startPunch()
	p.mu.Lock()
	p.punchResult = ok
	p.mu.Unlock()
	return ok
}

func (p *puncher) startPunch() bool {
	fw, _ := p.analysis().state()
	p.mu.Lock()
	if p.destroyed || p.connected || len(p.remoteAddrs) == 0 {
		p.mu.Unlock()
		return false
	}
	p.punching = true
	local, remote := coerceFirewall(fw), coerceFirewall(p.remoteFirewall)
	var verified *netip.AddrPort
	for _, a := range p.remoteAddrs {
		if a.verified {
			verified = &a.addr
			break
		}
	}
	p.mu.Unlock()
	switch {
	case local == FirewallConsistent && remote == FirewallConsistent:
		go p.consistentProbe()
		return true
	case verified == nil:
		return false
	case local == FirewallConsistent && remote >= FirewallRandom:
		p.startRandomized()
		go p.randomProbes(*verified)
		return true
	case local >= FirewallRandom && remote == FirewallConsistent:
		p.startRandomized()
		p.openBirthdaySockets(*verified)
		go p.keepAliveRandomNAT(*verified)
		return true
	}
	return false
}

// pause waits d, or less when punching stops; it reports whether punching
// goes on.
func (p *puncher) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.stop:
		return false
	case <-t.C:
		return p.isPunching()
	}
}

func (p *puncher) isPunching() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.punching
}

func (p *puncher) consistentProbe() {
	// The responder's fast-mode ping went out already: give it a moment.
	if !p.initiator && !p.pause(time.Second) {
		p.autoDestroy()
		return
	}
	for tries := 1; tries <= consistentTries && p.isPunching(); tries++ {
		p.mu.Lock()
		addrs := append([]remoteAddr(nil), p.remoteAddrs...)
		p.mu.Unlock()
		for _, a := range addrs {
			// Unverified addresses only every fourth round.
			if a.verified || tries&3 == 0 {
				p.ping(a.addr)
			}
		}
		if !p.pause(time.Second) {
			break
		}
	}
	p.autoDestroy()
}

func (p *puncher) randomProbes(remote netip.AddrPort) {
	for range randomTries {
		if !p.isPunching() {
			break
		}
		p.ping(netip.AddrPortFrom(remote.Addr(), uint16(1000+rand.IntN(64536))))
		if !p.pause(randomInterval) {
			break
		}
	}
	p.autoDestroy()
}

func (p *puncher) openBirthdaySockets(remote netip.AddrPort) {
	for p.isPunching() {
		p.mu.Lock()
		n := len(p.sockets)
		p.mu.Unlock()
		if n >= birthdaySockets {
			return
		}
		s, err := p.addSocket()
		if err != nil {
			return
		}
		s.SendTTL(holepunchPing, remote, lowTTL)
	}
}

func (p *puncher) keepAliveRandomNAT(remote netip.AddrPort) {
	if !p.pause(100 * time.Millisecond) {
		p.autoDestroy()
		return
	}
	// The first pass only refreshes our own mappings; later ones reach the
	// peer's NAT.
	i, low := 0, true
	for range randomTries {
		p.mu.Lock()
		if !p.punching || len(p.sockets) == 0 {
			p.mu.Unlock()
			break
		}
		if i >= len(p.sockets) {
			i, low = 0, false
		}
		s := p.sockets[i]
		p.mu.Unlock()
		i++
		if low {
			s.SendTTL(holepunchPing, remote, lowTTL)
		} else {
			s.Send(holepunchPing, remote)
		}
		if !p.pause(randomInterval) {
			break
		}
	}
	p.autoDestroy()
}

func (p *puncher) autoDestroy() {
	p.mu.Lock()
	connected := p.connected
	p.mu.Unlock()
	if !connected {
		p.destroy(true)
	}
}

// startRandomized counts this puncher among the node's random punches.
func (p *puncher) startRandomized() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.randomized {
		p.randomized = true
		p.n.mu.Lock()
		p.n.randomPunches++
		p.n.mu.Unlock()
	}
}

// endRandomized uncounts it and starts the interval before the next.
// mu is held.
func (p *puncher) endRandomized() {
	if !p.randomized {
		return
	}
	p.randomized = false
	p.n.mu.Lock()
	p.n.randomPunches--
	p.n.lastRandomPunch = time.Now()
	p.n.mu.Unlock()
}

// randomPunchThrottled reports whether the node must wait before another
// random punch: one at a time, randomPunchInterval after the last.
func (n *Node) randomPunchThrottled() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.randomPunches >= 1 || time.Since(n.lastRandomPunch) < randomPunchInterval
}

func coerceFirewall(fw uint64) uint64 {
	if fw == FirewallOpen {
		return FirewallConsistent
	}
	return fw
}

// newSocket binds a holepunch socket that the node closes on Close if its
// user has not.
func (n *Node) newSocket(onPing func(*udx.Socket, netip.AddrPort)) (*udx.Socket, error) {
	s, err := n.d().NewSocket(onPing)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.sockets[s] = struct{}{}
	n.mu.Unlock()
	return s, nil
}

func (n *Node) closeSocket(s *udx.Socket) {
	n.mu.Lock()
	delete(n.sockets, s)
	n.mu.Unlock()
	s.Close()
}

// closeWith closes s, a holepunch socket a connection runs on, when the
// connection's stream ends.
func (n *Node) closeWith(s *udx.Socket, stream *udx.Stream) {
	go func() {
		<-stream.Done()
		n.closeSocket(s)
	}()
}
