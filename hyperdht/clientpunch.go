package hyperdht

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/dhtrelay/dht-relay/udx"
)

// clientPunch is the client's side of the holepunch exchange, as
// hyperdht's connect.js: a probe round through the server's relay tells
// each side the other's NAT, then a punch round starts both punching.
// Payloads are sealed with the handshake's holepunch secret, so relays
// learn nothing and cannot forge a round.
type clientPunch struct {
	n       *Node
	target  [32]byte
	route   handshakeRoute
	remote  *NoisePayload
	payload *securePayload
	puncher *puncher
	round   uint64
	// lanSettled is closed once the try on our own network has answered,
	// failed or found nothing to try, or run has returned.
	lanSettled chan struct{}
}

// punchTimeout bounds a whole punch: the probe rounds, and the longest
// punch (random probes, about 35 s).
const punchTimeout = 50 * time.Second

// holepunchReply is a peer's answer to one round.
type holepunchReply struct {
	payload     *HolepunchPayload
	to          netip.AddrPort // where the relay saw our punch socket
	from        netip.AddrPort
	peerAddress netip.AddrPort // where the relay saw the peer's punch socket
}

// newPuncher makes the connection's puncher; cancel ends the punch and
// aborted closes if it gives up. However the stream goes direct, through a
// ping on a punch socket or the peer's packets arriving on one while the
// stream runs relayed, the punch ends, and a punch socket the stream is on
// becomes the connection's.
func (c *clientPunch) newPuncher(paths *streamPaths, cancel context.CancelFunc, aborted chan struct{}) (*puncher, error) {
	p, err := c.n.newPuncher(true, c.remote.Firewall,
		func(s *udx.Socket, from netip.AddrPort) {
			// Taking the path, the stream owns s (below); else s is
			// closed unless the stream already runs on it.
			if !paths.direct(s, from) && !paths.runsOn(s) {
				c.n.closeSocket(s)
			}
			cancel()
		},
		func() {
			close(aborted)
			cancel()
		})
	if err != nil {
		return nil, err
	}
	paths.setOnDirect(func(s *udx.Socket) {
		if p.keep(s) {
			c.n.closeWith(s, paths.stream)
		}
		cancel()
	})
	return p, nil
}

// run starts the connection's stream on the first path that works: the
// punch, the server's address on our own network (lan) or the blind relay
// (relay; nil without one). A stream that starts relayed keeps punching in
// the background and moves to the direct path if the punch gets through.
func (c *clientPunch) run(ctx context.Context, lan <-chan lanResult, relay <-chan *relayLink, paths *streamPaths) error {
	// The punch may outlive Connect, so it has a context of its own.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), punchTimeout)
	aborted := make(chan struct{})
	p, err := c.newPuncher(paths, cancel, aborted)
	if err != nil {
		cancel()
		return err
	}
	c.puncher = p
	go func() {
		select {
		case <-paths.stream.Done():
		case <-pctx.Done():
		}
		p.destroy(false)
	}()
	c.lanSettled = make(chan struct{})
	defer func() {
		if lan != nil { // its answer never came
			close(c.lanSettled)
		}
	}()
	errc := make(chan error, 1)
	go func() { errc <- c.exchange(pctx) }()
	// A relay that pairs after the stream started elsewhere is let go.
	defer func() {
		if relay != nil {
			go func() {
				if l := <-relay; l != nil {
					paths.relayed(l)
				}
			}()
		}
	}()
	var failed error
	for {
		select {
		case <-paths.started:
			return nil
		case r := <-lan:
			lan = nil
			if r.ok {
				p.destroy(false)
				paths.direct(c.n.d().ServerSocket(), r.addr)
			}
			close(c.lanSettled)
		case l := <-relay:
			relay = nil
			if l != nil {
				paths.relayed(l)
			} else if failed == nil {
				failed = ErrRelayAborted
			}
		case err := <-errc:
			errc = nil
			if err != nil {
				// JS ends every failed punch as aborted, whatever the
				// round's error; relayed clients show that code, and
				// the round's error stays in the text.
				p.destroy(false)
				failed = fmt.Errorf("%w (%v)", ErrHolepunchAborted, err)
			}
		case <-aborted:
			aborted = nil
			if failed == nil {
				failed = ErrHolepunchAborted
			}
		case <-ctx.Done():
			p.destroy(false)
			return ErrHolepunchAborted
		}
		punchOver := aborted == nil || (errc == nil && p.done())
		if punchOver && lan == nil && relay == nil {
			select {
			case <-paths.started:
				return nil
			default:
			}
			if failed == nil {
				failed = ErrHolepunchAborted
			}
			return failed
		}
	}
}

// exchange runs the rounds and starts the punch.
func (c *clientPunch) exchange(ctx context.Context) error {
	serverRelay := c.remote.Holepunch.Relays[0]
	for _, r := range c.remote.Holepunch.Relays {
		if r.RelayAddress == c.route.relay {
			serverRelay = r
			break
		}
	}
	serverAddress := c.route.server
	token, peerAddress, err := c.probeRound(ctx, serverAddress, serverRelay, true)
	if err != nil {
		return err
	}
	// Through the same relay, the server's punch socket is where the relay
	// saw it last; open our side to it.
	if serverRelay.RelayAddress == c.route.relay && peerAddress != serverAddress {
		serverAddress = peerAddress
		c.puncher.openSession(serverAddress)
	}
	return c.roundPunch(ctx, serverAddress, token, serverRelay)
}

func (c *clientPunch) probeRound(ctx context.Context, serverAddress netip.AddrPort, serverRelay RelayInfo, retry bool) (*[32]byte, netip.AddrPort, error) {
	p := c.puncher
	p.openSession(serverAddress)
	fw, addrs := p.analysis().state()
	reply, err := c.update(ctx, serverRelay.PeerAddress, serverRelay.RelayAddress, &HolepunchPayload{
		Firewall: fw, Round: c.next(), Addresses: addrs, RemoteAddress: &serverAddress,
	})
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	p.analysis().add(reply.to, reply.from)
	if rfw, _ := p.remote(); rfw == FirewallUnknown {
		// The server may still be analysing: give it a moment.
		if err := sleepCtx(ctx, time.Second); err != nil {
			return nil, netip.AddrPort{}, ErrHolepunchAborted
		}
	}
	if !p.analyze(ctx, false) {
		if p.analyze(ctx, true) {
			return c.probeRound(ctx, serverAddress, serverRelay, false)
		}
	}
	rfw, _ := p.remote()
	if (rfw == FirewallUnknown || reply.payload.Token == nil) && retry {
		return c.probeRound(ctx, serverAddress, serverRelay, false)
	}
	fw, _ = p.analysis().state()
	if rfw == FirewallUnknown || fw == FirewallUnknown {
		c.abort(ctx, serverRelay)
		return nil, netip.AddrPort{}, ErrHolepunchProbeTimeout
	}
	if rfw >= FirewallRandom && fw >= FirewallRandom {
		c.abort(ctx, serverRelay)
		return nil, netip.AddrPort{}, ErrDoubleRandomizedNATs
	}
	return reply.payload.Token, reply.peerAddress, nil
}

func (c *clientPunch) roundPunch(ctx context.Context, serverAddress netip.AddrPort, remoteToken *[32]byte, serverRelay RelayInfo) error {
	p := c.puncher
	// What we tell the server now is final: keep it.
	p.analysis().freeze()
	fw, addrs := p.analysis().state()
	rfw, _ := p.remote()
	// Without a blind relay to wait on, a throttled random punch ends here.
	if (rfw >= FirewallRandom || fw >= FirewallRandom) && c.n.randomPunchThrottled() {
		return ErrHolepunchAborted
	}
	token := c.payload.token(serverAddress)
	if _, err := c.update(ctx, serverAddress, c.route.relay, &HolepunchPayload{
		Firewall: fw, Round: c.next(), Punching: true, Addresses: addrs, Token: &token, RemoteToken: remoteToken,
	}); err != nil {
		return err
	}
	if _, punching := p.remote(); !punching {
		return ErrRemoteNotHolepunching
	}
	if !p.punch() {
		return ErrRemoteNotHolepunchable
	}
	return nil
}

func (c *clientPunch) next() uint64 {
	r := c.round
	c.round++
	return r
}

// update sends one round to relay, for the server's punch socket at
// peerAddress, and takes in the server's answer.
func (c *clientPunch) update(ctx context.Context, peerAddress, relay netip.AddrPort, m *HolepunchPayload) (*holepunchReply, error) {
	msg := (&Holepunch{Mode: ModeFromClient, ID: c.remote.Holepunch.ID, Payload: c.payload.encrypt(m), PeerAddress: &peerAddress}).Encode(nil)
	res, err := c.n.d().RequestVia(ctx, c.puncher.socket(), relay, CmdPeerHolepunch, &c.target, msg)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ErrHolepunchAborted
		}
		return nil, err
	}
	var hp Holepunch
	if res.Value == nil || hp.Decode(res.Value) != nil || hp.Mode != ModeReply {
		return nil, ErrBadHolepunchReply
	}
	remote := c.payload.decrypt(hp.Payload)
	if remote == nil {
		return nil, ErrHolepunchInvalid
	}
	if remote.Error != ErrorNone {
		return nil, remoteAborted(remote.Error)
	}
	var verified netip.Addr
	if remote.RemoteToken != nil && m.Token != nil && *remote.RemoteToken == *m.Token {
		verified = peerAddress.Addr()
	}
	c.puncher.updateRemote(remote.Punching, remote.Firewall, remote.Addresses, verified)
	r := &holepunchReply{payload: remote, to: res.To, from: relay, peerAddress: relay}
	if hp.PeerAddress != nil {
		r.peerAddress = *hp.PeerAddress
	}
	return r, nil
}

// abort tells the server we give up, best effort, once the try on our own
// network has settled: a server told first drops the stream, which that
// try would then start for nothing. A try that started the stream ends
// ctx (the stream went direct), and the server is told nothing.
func (c *clientPunch) abort(ctx context.Context, serverRelay RelayInfo) {
	select {
	case <-c.lanSettled:
	case <-ctx.Done():
	}
	if ctx.Err() == nil {
		c.update(ctx, serverRelay.PeerAddress, serverRelay.RelayAddress, &HolepunchPayload{Error: ErrorAborted, Round: c.next()})
	}
	c.puncher.destroy(false)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
