package hyperdht

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/dhtrelay/dht-relay/dhtrpc"
	"github.com/dhtrelay/dht-relay/noise"
	"github.com/dhtrelay/dht-relay/udx"
)

// ClientConfig says how a client is keyed: KeyPair, or a Handshaker run
// elsewhere (the connection is then raw unless it hands out keys).
type ClientConfig struct {
	KeyPair   *KeyPair
	Handshake Handshaker
	// RelayThrough is the public key of a blind relay to fall back on
	// when holepunching fails (hyperdht's relayThrough).
	RelayThrough *[32]byte
}

// Connect opens a connection to the server with remotePublicKey: it finds
// the nodes that route to the server, runs the IK handshake through them
// (the first that answers wins), and connects a UDX stream to the server
// with SecretStream on top.
func (n *Node) Connect(ctx context.Context, remotePublicKey [32]byte, cfg ClientConfig) (*Conn, error) {
	// No server can hold a key that is not a valid point: JS looks it up,
	// finds nobody and fails so; applications branch on that code.
	if !noise.ValidPublicKey(remotePublicKey[:]) {
		return nil, ErrPeerNotFound
	}
	target := Hash(remotePublicKey[:])
	d := n.d()
	h := cfg.Handshake
	if h == nil {
		if cfg.KeyPair == nil {
			return nil, errors.New("hyperdht: a client needs a key pair or a handshake")
		}
		var err error
		if h, err = LocalHandshaker(cfg.KeyPair, &remotePublicKey); err != nil {
			return nil, err
		}
	}
	stream, err := d.UDX().NewStream(d.UDX().RandomID())
	if err != nil {
		return nil, err
	}
	// An open server may start sending before its handshake reply has been
	// read here: take that data in, and remember where it came from.
	var early struct {
		sync.Mutex
		sock *udx.Socket
		from netip.AddrPort
	}
	stream.SetFirewall(func(s *udx.Socket, from netip.AddrPort) bool {
		early.Lock()
		if early.sock == nil {
			early.sock, early.from = s, from
		}
		early.Unlock()
		return true
	})
	ours := NoisePayload{Version: 1, Firewall: FirewallUnknown, UDX: &UDXInfo{Version: 1, ID: uint64(stream.ID())}, SecretStream: &SecretStreamInfo{Version: 1}, RelayThrough: newRelayThrough(cfg.RelayThrough)}
	// Reachable unasked, as JS's dht.remoteAddress() judges it: the server
	// can connect to us, whether or not we serve as a persistent node.
	if pub := d.PublicAddr(); pub.Addr().IsValid() && !d.Firewalled() {
		ours.Firewall = FirewallOpen
		ours.Addresses4 = []netip.AddrPort{netip.AddrPortFrom(pub.Addr(), d.ServerSocket().LocalAddr().Port())}
	}
	ours.Addresses4 = append(ours.Addresses4, n.localAddresses()...)
	msg1, err := h.Send(ours.Encode(nil))
	if err != nil {
		stream.Close()
		return nil, err
	}

	// The nodes holding the server's announcement relay the handshake.
	var relays []netip.AddrPort
	if _, err := d.Query(ctx, target, false, CmdFindPeer, nil, func(r dhtrpc.Reply) {
		var p Peer
		if r.Response.Value != nil && p.Decode(r.Response.Value) == nil && p.PublicKey == remotePublicKey {
			relays = append(relays, r.From)
		}
	}); err != nil {
		stream.Close()
		return nil, err
	}
	if len(relays) == 0 {
		stream.Close()
		return nil, ErrPeerNotFound
	}
	req := (&Handshake{Mode: ModeFromClient, Noise: msg1}).Encode(nil)
	var reply Handshake
	var hs handshakeRoute
	got := false
	for _, relay := range relays {
		res, from, _, err := d.Request(ctx, relay, false, CmdPeerHandshake, &target, req, nil)
		if err != nil || from != relay || res.Value == nil || reply.Decode(res.Value) != nil || reply.Mode != ModeReply || len(reply.Noise) == 0 {
			continue
		}
		hs = handshakeRoute{relay: relay, server: relay, client: res.To, relayed: reply.PeerAddress != nil}
		if hs.relayed {
			hs.server = *reply.PeerAddress
		}
		got = true
		break
	}
	if !got {
		stream.Close()
		return nil, ErrPeerConnectionFailed
	}
	msg2, remotePK, err := h.Recv(reply.Noise)
	var remote NoisePayload
	if err != nil || remotePK != remotePublicKey || remote.Decode(msg2) != nil {
		stream.Close()
		return nil, fmt.Errorf("%w: bad handshake reply", ErrPeerConnectionFailed)
	}
	switch {
	case remote.Version != 1:
		stream.Close()
		return nil, ErrServerIncompatible
	case remote.Error != ErrorNone:
		stream.Close()
		return nil, ErrServerError
	case remote.UDX == nil:
		stream.Close()
		return nil, &Error{ErrServerError.Code, "Server did not send UDX data"}
	}
	keys, encrypt := h.Keys()
	// From now on the server's first packet binds the stream (it may come
	// from another address than announced); if one came already, connect
	// there.
	paths := newStreamPaths(stream, uint32(remote.UDX.ID))
	stream.SetFirewall(paths.firewall)
	early.Lock()
	sock, addr := early.sock, early.from
	early.Unlock()
	holepunchable := remote.Holepunch != nil && len(remote.Holepunch.Relays) > 0
	switch {
	case sock != nil:
		paths.direct(sock, addr)
	case !hs.relayed:
		// The server itself answered: it is reachable where we asked.
		paths.direct(d.Socket(), hs.server)
	case remote.Firewall == FirewallOpen || !holepunchable:
		addr = hs.server
		for _, a := range remote.Addresses4 {
			if !isBogon(a.Addr()) {
				addr = a
				break
			}
		}
		paths.direct(d.Socket(), addr)
	case ours.Firewall == FirewallOpen:
		// The server connects to us; the stream's firewall takes it.
	default:
		lan := n.pingLAN(ctx, hs, remote.Addresses4)
		var relay <-chan *relayLink
		if plan, initiator := relayPlan(ours.RelayThrough, remote.RelayThrough); plan != nil {
			relay = n.pairAtRelay(context.WithoutCancel(ctx), plan, initiator, stream)
		}
		secret, ok := h.HolepunchSecret()
		if !ok {
			stream.Close()
			return nil, fmt.Errorf("%w: no holepunch secret", ErrHolepunchAborted)
		}
		c := &clientPunch{n: n, target: target, route: hs, remote: &remote, payload: newSecurePayload(secret)}
		if err := c.run(ctx, lan, relay, paths); err != nil {
			stream.Close()
			return nil, err
		}
	}
	c, err := newConn(stream, true, remotePublicKey, h, keys, encrypt)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPeerConnectionFailed, err)
	}
	return c, nil
}

// handshakeRoute is how a handshake went: the node it was sent to, where
// the server's reply came from (the relay itself if the server answered
// directly), and where that node saw us.
type handshakeRoute struct {
	relay, server, client netip.AddrPort
	relayed               bool
}

// isBogon reports addresses that are not globally routable, which a
// client does not dial when the server also gave its public address.
func isBogon(a netip.Addr) bool { return isPrivate4(a) || isReserved4(a) }

// sameNetwork says whether client and server are behind one NAT: the relay
// saw both at one public address.
func sameNetwork(hs handshakeRoute) bool {
	return hs.relayed && hs.client.Addr() == hs.server.Addr()
}

// lanResult is the outcome of trying a server on our own network.
type lanResult struct {
	addr netip.AddrPort
	ok   bool
}

// pingLAN pings, when client and server are behind one NAT, the server's
// address nearest ours on the network; the channel yields once, not ok
// when there is nothing to try or no answer came.
func (n *Node) pingLAN(ctx context.Context, hs handshakeRoute, theirs []netip.AddrPort) <-chan lanResult {
	out := make(chan lanResult, 1)
	var candidates []netip.AddrPort
	for _, a := range theirs {
		if !isReserved4(a.Addr()) {
			candidates = append(candidates, a)
		}
	}
	if !sameNetwork(hs) || len(candidates) == 0 {
		out <- lanResult{}
		return out
	}
	addr := candidates[0]
	if m := matchAddress(n.localAddresses(), candidates); m != nil {
		addr = *m
	}
	go func() {
		_, err := n.d().PingVia(ctx, n.d().ServerSocket(), addr)
		out <- lanResult{addr: addr, ok: err == nil}
	}()
	return out
}
