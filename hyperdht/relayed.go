package hyperdht

import (
	"context"
	"crypto/rand"
	"net/netip"
	"sync"
	"time"

	"github.com/dhtrelay/dht-relay/blindrelay"
	"github.com/dhtrelay/dht-relay/noise"
	"github.com/dhtrelay/dht-relay/protomux"
	"github.com/dhtrelay/dht-relay/udx"
)

// Relaying through a blind relay, as hyperdht's relayThrough: when either
// side names a relay in its Noise payload, both connect to it and pair the
// connection's UDX streams there under the token in that payload (the
// namer is the pairing's initiator). The connection runs over the relay
// while the holepunch goes on, and moves to the direct path if the punch
// gets through.

// relayPairTimeout bounds connecting to the relay and pairing there;
// relayLinger is how long a relay stays after the connection moved to a
// direct path.
const (
	relayPairTimeout = 15 * time.Second
	relayLinger      = 10 * time.Second
)

// ErrRelayAborted means pairing through the blind relay failed.
var ErrRelayAborted = &Error{"RELAY_ABORTED", "Relay connection aborted"}

// relayLink is a stream's pairing at a relay: the connection to the relay
// and where packets for the relay's stream go.
type relayLink struct {
	conn     *Conn
	socket   *udx.Socket
	addr     netip.AddrPort
	remoteID uint32 // the relay's stream for us
}

func (l *relayLink) Close() { l.conn.Close() }

// relayPlan says which relay a connection pairs at, under which token, and
// on which side; nil when neither side named one.
func relayPlan(ours, theirs *RelayThroughInfo) (info *RelayThroughInfo, initiator bool) {
	if theirs != nil {
		return theirs, false
	}
	return ours, ours != nil
}

// newRelayThrough is our proposal of relay for a payload.
func newRelayThrough(relay *[32]byte) *RelayThroughInfo {
	if relay == nil {
		return nil
	}
	r := &RelayThroughInfo{Version: 1, PublicKey: *relay}
	rand.Read(r.Token[:])
	return r
}

// pairAtRelay connects to the relay and pairs stream there; the channel
// yields once, the link or nil.
func (n *Node) pairAtRelay(ctx context.Context, plan *RelayThroughInfo, initiator bool, stream *udx.Stream) <-chan *relayLink {
	out := make(chan *relayLink, 1)
	go func() {
		ctx, cancel := context.WithTimeout(ctx, relayPairTimeout)
		defer cancel()
		l, err := n.pair(ctx, plan, initiator, stream)
		if err != nil {
			l = nil
		}
		out <- l
	}()
	return out
}

func (n *Node) pair(ctx context.Context, plan *RelayThroughInfo, initiator bool, stream *udx.Stream) (*relayLink, error) {
	kp, err := noise.GenerateKeyPair(rand.Reader)
	if err != nil {
		return nil, err
	}
	conn, err := n.Connect(ctx, plan.PublicKey, ClientConfig{KeyPair: &kp})
	if err != nil {
		return nil, err
	}
	// The channel exists before the mux reads: the relay opens its side
	// as soon as it accepts, and protomux rejects an open that no channel
	// claims when it arrives.
	mux := protomux.New(conn.Stream)
	client := blindrelay.NewClient(mux, kp.Public[:])
	go mux.Run()
	remoteID, err := client.Pair(ctx, initiator, plan.Token, stream.ID())
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &relayLink{conn: conn, socket: conn.Raw.Socket(), addr: conn.Raw.RemoteAddr(), remoteID: remoteID}, nil
}

// streamPaths puts a connection's stream on its first path, relayed or
// direct, and moves a relayed stream to a direct path found later.
type streamPaths struct {
	stream   *udx.Stream
	remoteID uint32 // the peer's own stream
	started  chan struct{}

	mu         sync.Mutex
	onDirect   func(*udx.Socket) // if set, learns of each direct path the stream takes
	live       bool
	directSock *udx.Socket // the socket of the direct path the stream is on
	relay      *relayLink  // while the stream runs over it
	relaySock  *udx.Socket
	relayAddr  netip.AddrPort // where the relay's packets come from, even after
}

func newStreamPaths(stream *udx.Stream, remoteID uint32) *streamPaths {
	p := &streamPaths{stream: stream, remoteID: remoteID, started: make(chan struct{})}
	go func() {
		<-stream.Done()
		p.mu.Lock()
		l := p.relay
		p.relay = nil
		p.mu.Unlock()
		if l != nil {
			l.Close()
		}
	}()
	return p
}

// direct puts the stream on a direct path, or moves it there from the
// relay; it reports whether the stream took the path.
func (p *streamPaths) direct(sock *udx.Socket, addr netip.AddrPort) bool {
	p.mu.Lock()
	first, l := !p.live, p.relay
	if !first && l == nil {
		p.mu.Unlock()
		return false // already direct
	}
	p.live, p.relay, p.directSock = true, nil, sock
	onDirect := p.onDirect
	p.mu.Unlock()
	p.stream.Connect(sock, p.remoteID, addr)
	if first {
		close(p.started)
	}
	if l != nil {
		// The peer may still send over the relay what it sent before it
		// moved too (JS moves once its packets in flight are acked): the
		// relay stays a while.
		time.AfterFunc(relayLinger, l.Close)
	}
	if onDirect != nil {
		onDirect(sock)
	}
	return true
}

// setOnDirect makes fn learn of each direct path the stream takes from now
// on.
func (p *streamPaths) setOnDirect(fn func(*udx.Socket)) {
	p.mu.Lock()
	p.onDirect = fn
	p.mu.Unlock()
}

// runsOn reports whether the stream is on a direct path through sock.
func (p *streamPaths) runsOn(sock *udx.Socket) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.directSock == sock
}

// relayed puts the stream on the relay's pair unless it runs already; it
// reports whether the stream took the path. A pairing that comes after the
// stream went direct is bound for a while and then closed: the peer may
// have started over it and still sends there what it sent before moving.
func (p *streamPaths) relayed(l *relayLink) bool {
	p.mu.Lock()
	if p.live {
		late := p.relaySock == nil
		if late {
			p.relaySock, p.relayAddr = l.socket, l.addr
		}
		p.mu.Unlock()
		if late {
			p.stream.AckVia(l.socket, l.remoteID, l.addr)
			time.AfterFunc(relayLinger, l.Close)
		} else {
			l.Close()
		}
		return false
	}
	p.live, p.relay, p.relaySock, p.relayAddr = true, l, l.socket, l.addr
	p.mu.Unlock()
	p.stream.Connect(l.socket, l.remoteID, l.addr)
	close(p.started)
	return true
}

// firewall takes a packet from a path the stream is not on: the relay's,
// whose later packets are accepted where the stream is, or a direct one,
// which the stream moves to.
func (p *streamPaths) firewall(sock *udx.Socket, from netip.AddrPort) bool {
	p.mu.Lock()
	fromRelay := sock == p.relaySock && from == p.relayAddr
	p.mu.Unlock()
	if fromRelay {
		return true
	}
	p.direct(sock, from)
	return true
}

// ServeBlindRelay makes srv a blind relay for other peers: each connection
// it accepts may pair streams there (package blindrelay). It returns when
// srv closes or ctx ends.
func ServeBlindRelay(ctx context.Context, srv *Server) error {
	relay := blindrelay.NewServer(srv.n.d().UDX())
	for {
		c, err := srv.Accept(ctx)
		if err != nil {
			return err
		}
		if c.Stream == nil {
			c.Close() // a raw connection has no channel to pair on
			continue
		}
		mux := protomux.New(c.Stream)
		relay.Accept(mux, c.RemotePublicKey[:])
		go func() {
			mux.Run()
			c.Close()
		}()
	}
}
