package hyperdht

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"time"

	"github.com/dhtrelay/dht-relay/dhtrpc"
	"github.com/dhtrelay/dht-relay/secretstream"
	"github.com/dhtrelay/dht-relay/udx"
)

// Server timing and bounds.
const (
	// handshakeTimeout is how long a server waits for a client it answered
	// to reach its stream.
	handshakeTimeout = 10 * time.Second
	// reannounceInterval refreshes a server's announcement well inside the
	// records' 20-minute life.
	reannounceInterval = 5 * time.Minute
	// acceptBacklog bounds connections waiting for Accept.
	acceptBacklog = 64
	// keepAlive is the SecretStream keepalive hyperdht uses.
	keepAlive = 5 * time.Second
)

// ErrServerClosed is returned by Accept after Close.
var ErrServerClosed = errors.New("hyperdht: server closed")

// Firewall decides on an incoming connection before it is answered; it
// returns true to deny. A denied client gets no reply, as in hyperdht.
type Firewall func(remotePublicKey [32]byte, payload *NoisePayload, from netip.AddrPort) bool

// Conn is a connection to a peer: a SecretStream over the UDX stream, or,
// when the handshake keys are held elsewhere, the raw UDX stream alone
// (Stream is nil then).
type Conn struct {
	*secretstream.Stream
	Raw             *udx.Stream
	RemotePublicKey [32]byte
	// Handshaker is what ran the connection's handshake, so that whoever
	// supplied it can tell its connections apart.
	Handshaker Handshaker
}

// ServerConfig says how a server is keyed: either KeyPair, or a Signer for
// its announcements and a Handshake for each connection's handshake.
type ServerConfig struct {
	KeyPair   *KeyPair
	Signer    Signer
	Handshake func() (Handshaker, error)
	Firewall  Firewall
}

// Server accepts connections to a public key.
type Server struct {
	n      *Node
	cfg    ServerConfig
	target [32]byte
	conns  chan *Conn
	done   chan struct{}
	once   sync.Once

	mu         sync.Mutex
	handshakes map[string]*serverHandshake // by the client's first Noise message
}

// serverHandshake is one client's handshake: retries of its first message
// are answered with the same reply, or dropped while it is being made, so
// that a Handshaker or firewall elsewhere sees each handshake once.
type serverHandshake struct {
	reply []byte // our Noise reply, resent when the client retries
}

// Listen announces the server's public key and accepts connections to it.
func (n *Node) Listen(ctx context.Context, cfg ServerConfig) (*Server, error) {
	if kp := cfg.KeyPair; kp != nil {
		if cfg.Signer == nil {
			cfg.Signer = LocalSigner(kp)
		}
		if cfg.Handshake == nil {
			cfg.Handshake = func() (Handshaker, error) { return LocalHandshaker(kp, nil) }
		}
	}
	if cfg.Signer == nil || cfg.Handshake == nil {
		return nil, errors.New("hyperdht: a server needs a key pair, or a signer and a handshake")
	}
	pk := cfg.Signer.PublicKey()
	s := &Server{
		n: n, cfg: cfg, target: Hash(pk[:]),
		conns: make(chan *Conn, acceptBacklog), done: make(chan struct{}),
		handshakes: map[string]*serverHandshake{},
	}
	n.mu.Lock()
	n.servers[s.target] = s
	n.mu.Unlock()
	if err := n.Announce(ctx, s.target, cfg.Signer, nil, nil); err != nil {
		s.Close()
		return nil, err
	}
	go s.reannounce()
	return s, nil
}

// PublicKey is the server's key.
func (s *Server) PublicKey() [32]byte { return s.cfg.Signer.PublicKey() }

// Accept waits for the next connection.
func (s *Server) Accept(ctx context.Context) (*Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.done:
		return nil, ErrServerClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close stops accepting and unannounces the server.
func (s *Server) Close() error {
	s.once.Do(func() {
		close(s.done)
		s.n.mu.Lock()
		if s.n.servers[s.target] == s {
			delete(s.n.servers, s.target)
		}
		s.n.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.n.Unannounce(ctx, s.target, s.cfg.Signer, nil)
	})
	return nil
}

func (s *Server) reannounce() {
	t := time.NewTicker(reannounceInterval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			s.n.Announce(ctx, s.target, s.cfg.Signer, nil, nil)
			cancel()
		}
	}
}

// onHandshake answers a client's first Noise message, reaching this server
// directly (FROM_CLIENT) or through relays; it returns the reply message or
// nil when there is none (bad message, firewall denied).
func (s *Server) onHandshake(req *dhtrpc.IncomingRequest, hs *Handshake) []byte {
	key := string(hs.Noise)
	s.mu.Lock()
	if prev, ok := s.handshakes[key]; ok {
		reply := prev.reply // nil while the first copy is still being answered
		s.mu.Unlock()
		return reply
	}
	entry := &serverHandshake{}
	s.handshakes[key] = entry
	s.mu.Unlock()
	time.AfterFunc(handshakeTimeout, func() {
		s.mu.Lock()
		delete(s.handshakes, key)
		s.mu.Unlock()
	})

	client := req.From
	direct := hs.PeerAddress == nil
	if !direct {
		client = *hs.PeerAddress
	}
	h, err := s.cfg.Handshake()
	if err != nil {
		return nil
	}
	msg, remotePK, err := h.Recv(hs.Noise)
	if err != nil {
		return nil
	}
	var remote NoisePayload
	if remote.Decode(msg) != nil {
		return nil
	}
	if s.cfg.Firewall != nil && s.cfg.Firewall(remotePK, &remote, client) {
		return nil
	}
	errCode := uint64(ErrorNone)
	switch {
	case remote.Version != 1:
		errCode = ErrorVersionMismatch
	case remote.UDX == nil:
		errCode = ErrorAborted
	}
	d := s.n.d()
	var stream *udx.Stream
	if errCode == ErrorNone {
		if stream, err = d.UDX().NewStream(d.UDX().RandomID()); err != nil {
			return nil
		}
	}
	pub := d.PublicAddr()
	serverAddr := netip.AddrPortFrom(pub.Addr(), d.ServerSocket().LocalAddr().Port())
	// Open only when others can reach us unasked, as JS's
	// dht.remoteAddress() judges it: behind a NAT the address others see
	// takes no connection we did not start, and a client told it is open
	// would wait there in vain.
	ours := NoisePayload{Version: 1, Error: errCode, Firewall: FirewallUnknown, SecretStream: &SecretStreamInfo{Version: 1}}
	if pub.Addr().IsValid() && !d.Firewalled() {
		ours.Firewall = FirewallOpen
		ours.Addresses4 = []netip.AddrPort{serverAddr}
	}
	if stream != nil {
		ours.UDX = &UDXInfo{Version: 1, ID: uint64(stream.ID())}
	}
	reply, err := h.Send(ours.Encode(nil))
	if err != nil {
		if stream != nil {
			stream.Close()
		}
		return nil
	}
	s.mu.Lock()
	entry.reply = reply
	s.mu.Unlock()
	if stream == nil {
		return reply
	}
	keys, encrypt := h.Keys()
	remoteID := uint32(remote.UDX.ID)
	var once sync.Once
	start := func(sock *udx.Socket, addr netip.AddrPort) {
		once.Do(func() {
			stream.Connect(sock, remoteID, addr)
			go s.deliver(stream, remotePK, h, keys, encrypt)
		})
	}
	// The client's first packet tells where it really is (it may have
	// punched through from another address); an open or direct client is
	// connected to at once.
	stream.SetFirewall(func(sock *udx.Socket, from netip.AddrPort) bool {
		start(sock, from)
		return true
	})
	if remote.Firewall == FirewallOpen || direct {
		start(d.ServerSocket(), client)
	}
	time.AfterFunc(handshakeTimeout, func() {
		if stream.RemoteID() == 0 {
			stream.Close()
		}
	})
	return reply
}

func (s *Server) deliver(stream *udx.Stream, remotePK [32]byte, h Handshaker, keys secretstream.Keys, encrypt bool) {
	c, err := newConn(stream, false, remotePK, h, keys, encrypt)
	if err != nil {
		return
	}
	select {
	case s.conns <- c:
	case <-s.done:
		c.Close()
	default:
		// The backlog is full: refuse rather than queue without bound.
		c.Close()
	}
}

// newConn wraps a connected stream: in SecretStream when the keys are
// here, else raw.
func newConn(stream *udx.Stream, initiator bool, remotePK [32]byte, h Handshaker, keys secretstream.Keys, encrypt bool) (*Conn, error) {
	c := &Conn{Raw: stream, RemotePublicKey: remotePK, Handshaker: h}
	if !encrypt {
		return c, nil
	}
	ss, err := secretstream.New(stream, initiator, secretstream.Config{Keys: &keys, KeepAlive: keepAlive})
	if err != nil {
		stream.Close()
		return nil, err
	}
	c.Stream = ss
	return c, nil
}

// Close closes the connection.
func (c *Conn) Close() error {
	if c.Stream != nil {
		return c.Stream.Close()
	}
	return c.Raw.Close()
}
