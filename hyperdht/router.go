package hyperdht

import (
	"bytes"
	"net/netip"
	"time"

	"github.com/dhtrelay/dht-relay/dhtrpc"
)

// The relay side of PEER_HANDSHAKE and PEER_HOLEPUNCH: a node holding a
// server's own announcement forwards a client's message to the server
// (FROM_RELAY), a second relay forwards once more (FROM_SECOND_RELAY), and
// the server's answer (FROM_SERVER) goes back to the client as the reply to
// its original request (REPLY), under the client's transaction id.

// relayFor returns the address a server announced itself from, if this
// node holds its announcement.
func (n *Node) relayFor(target *[32]byte) (netip.AddrPort, bool) {
	if target == nil {
		return netip.AddrPort{}, false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	e, ok := n.router[*target]
	if !ok || time.Now().After(e.expires) {
		return netip.AddrPort{}, false
	}
	return e.relay, true
}

func (n *Node) onPeerHandshake(req *dhtrpc.IncomingRequest) {
	var hs Handshake
	if req.Value == nil || hs.Decode(req.Value) != nil {
		return
	}
	if req.Target != nil {
		n.mu.Lock()
		srv := n.servers[*req.Target]
		n.mu.Unlock()
		if srv != nil {
			n.answerHandshake(srv, req, &hs)
			return
		}
	}
	relay, haveRelay := n.relayFor(req.Target)
	counted := func() {
		n.mu.Lock()
		n.stats.HandshakesRelayed++
		n.mu.Unlock()
	}
	switch hs.Mode {
	case ModeFromClient:
		if len(hs.Noise) == 0 {
			return
		}
		to := relay
		if hs.RelayAddress != nil {
			to = *hs.RelayAddress
		} else if !haveRelay {
			req.ReplyWith(nil, false, true) // help the client route
			return
		}
		from := req.From
		counted()
		req.Relay((&Handshake{Mode: ModeFromRelay, Noise: hs.Noise, PeerAddress: &from}).Encode(nil), to)
	case ModeFromRelay:
		if !haveRelay || len(hs.Noise) == 0 {
			return
		}
		from := req.From
		counted()
		req.Relay((&Handshake{Mode: ModeFromSecondRelay, Noise: hs.Noise, PeerAddress: hs.PeerAddress, RelayAddress: &from}).Encode(nil), relay)
	case ModeFromServer:
		if hs.PeerAddress == nil || len(hs.Noise) == 0 {
			return
		}
		from := req.From
		counted()
		req.ReplyTo((&Handshake{Mode: ModeReply, Noise: hs.Noise, PeerAddress: &from}).Encode(nil), *hs.PeerAddress, false, false)
	}
}

func (n *Node) onPeerHolepunch(req *dhtrpc.IncomingRequest) {
	var hp Holepunch
	if req.Value == nil || hp.Decode(req.Value) != nil {
		return
	}
	relay, haveRelay := n.relayFor(req.Target)
	switch hp.Mode {
	case ModeFromClient:
		if hp.PeerAddress == nil && !haveRelay {
			return
		}
		to := relay
		if hp.PeerAddress != nil {
			to = *hp.PeerAddress
		}
		from := req.From
		req.Relay((&Holepunch{Mode: ModeFromRelay, ID: hp.ID, Payload: hp.Payload, PeerAddress: &from}).Encode(nil), to)
	case ModeFromRelay:
		if hp.PeerAddress == nil || req.Target == nil {
			return
		}
		n.mu.Lock()
		srv := n.servers[*req.Target]
		n.mu.Unlock()
		if srv != nil {
			n.answerHolepunch(srv, req, &hp)
		}
	case ModeFromServer:
		if hp.PeerAddress == nil {
			return
		}
		from := req.From
		req.ReplyTo((&Holepunch{Mode: ModeReply, ID: hp.ID, Payload: hp.Payload, PeerAddress: &from}).Encode(nil), *hp.PeerAddress, false, false)
	}
}

// answerHandshake lets one of this node's servers answer, on the path the
// message came by.
func (n *Node) answerHandshake(srv *Server, req *dhtrpc.IncomingRequest, hs *Handshake) {
	if len(hs.Noise) == 0 {
		return
	}
	// The answer may wait on a firewall or on a Noise peer elsewhere (a
	// relayed client), so it is made off the socket's goroutine, from copies
	// of what still points into the socket's buffer.
	hs = &Handshake{Mode: hs.Mode, Noise: bytes.Clone(hs.Noise), PeerAddress: hs.PeerAddress, RelayAddress: hs.RelayAddress}
	go n.finishHandshake(srv, detach(req), hs)
}

// detach copies a request for answering off the socket's goroutine,
// without its value, which points into the socket's buffer.
func detach(req *dhtrpc.IncomingRequest) *dhtrpc.IncomingRequest {
	held := *req
	inner := *req.Request
	inner.Value = nil
	held.Request = &inner
	return &held
}

func (n *Node) finishHandshake(srv *Server, req *dhtrpc.IncomingRequest, hs *Handshake) {
	reply, sock := srv.onHandshake(req, hs)
	if reply == nil {
		return
	}
	// A holepunching server answers from its punch socket, so that the
	// relay tells the client where that socket is.
	if sock == nil {
		sock = req.Socket()
	}
	switch hs.Mode {
	case ModeFromClient:
		req.ReplyWith((&Handshake{Mode: ModeReply, Noise: reply}).Encode(nil), false, false)
	case ModeFromRelay:
		req.RelayVia((&Handshake{Mode: ModeFromServer, Noise: reply, PeerAddress: hs.PeerAddress}).Encode(nil), req.From, sock)
	case ModeFromSecondRelay:
		if hs.RelayAddress != nil {
			req.RelayVia((&Handshake{Mode: ModeFromServer, Noise: reply, PeerAddress: hs.PeerAddress}).Encode(nil), *hs.RelayAddress, sock)
		}
	}
}

// answerHolepunch lets one of this node's servers answer a holepunch
// round; the answer may wait on the NAT analysis, so it is made off the
// socket's goroutine.
func (n *Node) answerHolepunch(srv *Server, req *dhtrpc.IncomingRequest, hp *Holepunch) {
	held := detach(req)
	id, peer, payload := hp.ID, *hp.PeerAddress, bytes.Clone(hp.Payload)
	go func() {
		answer, sock := srv.onHolepunch(held, id, peer, payload)
		if answer == nil {
			return
		}
		held.RelayVia((&Holepunch{Mode: ModeFromServer, Payload: answer, PeerAddress: &peer}).Encode(nil), held.From, sock)
	}()
}
