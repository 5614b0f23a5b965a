package hyperdht

import (
	"context"
	"errors"
	"net/netip"
	"slices"
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
	// RelayThrough is the public key of a blind relay to fall back on
	// when holepunching fails (hyperdht's relayThrough).
	RelayThrough *[32]byte
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
	punches    []*serverPunch              // by holepunch id; nil slots are free
	relays     []RelayInfo                 // the nodes holding our announcement
}

// serverPunch is the server's side of one client's holepunch.
type serverPunch struct {
	mu      sync.Mutex
	round   uint64
	payload *securePayload
	puncher *puncher
	// prepunch gives up on a client that has not started punching in time.
	prepunch *time.Timer
}

// serverHandshake is one client's handshake: retries of its first message
// are answered with the same reply, or dropped while it is being made, so
// that a Handshaker or firewall elsewhere sees each handshake once.
type serverHandshake struct {
	reply  []byte      // our Noise reply, resent when the client retries
	socket *udx.Socket // the socket the reply goes out from
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
	if err := s.announce(ctx); err != nil {
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
			s.announce(ctx)
			cancel()
		}
	}
}

func (s *Server) announce(ctx context.Context) error {
	relays, err := s.n.announce(ctx, s.target, s.cfg.Signer, nil, nil)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.relays = relays
	s.mu.Unlock()
	return nil
}

func (s *Server) isRelay(addr netip.AddrPort) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.relays {
		if r.RelayAddress == addr {
			return true
		}
	}
	return false
}

// addPunch takes a free holepunch id.
func (s *Server) addPunch(p *serverPunch) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, o := range s.punches {
		if o == nil {
			s.punches[i] = p
			return uint64(i)
		}
	}
	s.punches = append(s.punches, p)
	return uint64(len(s.punches) - 1)
}

// clearPunch frees id once late rounds of its exchange can no longer come.
func (s *Server) clearPunch(id uint64, p *serverPunch) {
	time.AfterFunc(handshakeTimeout, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if id < uint64(len(s.punches)) && s.punches[id] == p {
			s.punches[id] = nil
			for len(s.punches) > 0 && s.punches[len(s.punches)-1] == nil {
				s.punches = s.punches[:len(s.punches)-1]
			}
		}
	})
}

// onHandshake answers a client's first Noise message, reaching this server
// directly (FROM_CLIENT) or through relays; it returns the reply message,
// or nil when there is none (bad message, firewall denied), and the socket
// to send it from (nil: the one it came in on).
func (s *Server) onHandshake(req *dhtrpc.IncomingRequest, hs *Handshake) ([]byte, *udx.Socket) {
	key := string(hs.Noise)
	s.mu.Lock()
	if prev, ok := s.handshakes[key]; ok {
		reply, sock := prev.reply, prev.socket // nil while the first copy is still being answered
		s.mu.Unlock()
		return reply, sock
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
		return nil, nil
	}
	msg, remotePK, err := h.Recv(hs.Noise)
	if err != nil {
		return nil, nil
	}
	var remote NoisePayload
	if remote.Decode(msg) != nil {
		return nil, nil
	}
	if s.cfg.Firewall != nil && s.cfg.Firewall(remotePK, &remote, client) {
		return nil, nil
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
			return nil, nil
		}
	}
	pub := d.PublicAddr()
	// Open only when others can reach us unasked, as JS's
	// dht.remoteAddress() judges it: behind a NAT the address others see
	// takes no connection we did not start, and a client told it is open
	// would wait there in vain.
	open := pub.Addr().IsValid() && !d.Firewalled()
	ours := NoisePayload{Version: 1, Error: errCode, Firewall: FirewallUnknown, SecretStream: &SecretStreamInfo{Version: 1}, RelayThrough: newRelayThrough(s.cfg.RelayThrough)}
	var punch *serverPunch
	var punchID uint64
	if open {
		ours.Firewall = FirewallOpen
		ours.Addresses4 = []netip.AddrPort{netip.AddrPortFrom(pub.Addr(), d.ServerSocket().LocalAddr().Port())}
	}
	ours.Addresses4 = append(ours.Addresses4, s.n.localAddresses()...)
	if !open {
		punch = &serverPunch{}
		punchID = s.addPunch(punch)
		s.mu.Lock()
		ours.Holepunch = &HolepunchInfo{ID: punchID, Relays: append([]RelayInfo{}, s.relays...)}
		s.mu.Unlock()
	}
	if stream != nil {
		ours.UDX = &UDXInfo{Version: 1, ID: uint64(stream.ID())}
	}
	fail := func() ([]byte, *udx.Socket) {
		if stream != nil {
			stream.Close()
		}
		if punch != nil {
			s.clearPunch(punchID, punch)
		}
		return nil, nil
	}
	reply, err := h.Send(ours.Encode(nil))
	if err != nil {
		return fail()
	}
	if stream == nil {
		fail()
		s.mu.Lock()
		entry.reply = reply
		s.mu.Unlock()
		return reply, nil
	}
	keys, encrypt := h.Keys()
	paths := newStreamPaths(stream, uint32(remote.UDX.ID))
	go func() {
		select {
		case <-paths.started:
			s.deliver(stream, remotePK, h, keys, encrypt)
		case <-stream.Done():
		}
	}()
	// A direct path ends the punch; a punch socket it runs on is the
	// connection's from then on.
	paths.setOnDirect(func(sock *udx.Socket) {
		if punch == nil {
			return
		}
		punch.stop()
		if p := punch.getPuncher(); p != nil && p.keep(sock) {
			s.n.closeWith(sock, stream)
		}
		s.clearPunch(punchID, punch)
	})
	// The client's first packet tells where it really is (it may have
	// punched through from another address); an open or direct client is
	// connected to at once.
	stream.SetFirewall(paths.firewall)
	// Until the stream starts, it waits on the punch (or on the client
	// connecting to us) and on the blind relay, if any; it closes when
	// both have given up.
	var waitMu sync.Mutex
	waiting := 1
	giveUp := func() {
		waitMu.Lock()
		waiting--
		over := waiting == 0
		waitMu.Unlock()
		if !over {
			return
		}
		select {
		case <-paths.started:
		default:
			stream.Close()
		}
	}
	relay := func() {
		plan, initiator := relayPlan(ours.RelayThrough, remote.RelayThrough)
		if plan == nil {
			return
		}
		waitMu.Lock()
		waiting++
		waitMu.Unlock()
		go func() {
			if l := <-s.n.pairAtRelay(context.Background(), plan, initiator, stream); l != nil {
				paths.relayed(l)
			}
			giveUp()
		}()
	}
	var from *udx.Socket
	switch {
	case remote.Firewall == FirewallOpen || direct:
		sock := d.Socket()
		if direct {
			sock = req.Socket()
		}
		paths.direct(sock, client)
	case open:
		relay()
		time.AfterFunc(handshakeTimeout, giveUp)
	default:
		secret, ok := h.HolepunchSecret()
		if !ok {
			return fail()
		}
		abort := func() {
			s.clearPunch(punchID, punch)
			giveUp()
		}
		p, err := s.n.newPuncher(false, remote.Firewall, nil, abort)
		if err != nil {
			return fail()
		}
		punch.mu.Lock()
		punch.payload, punch.puncher = newSecurePayload(secret), p
		punch.prepunch = time.AfterFunc(handshakeTimeout, func() { p.destroy(true) })
		punch.mu.Unlock()
		relay()
		// A client behind our own NAT will try us on our network: keep
		// answering from the socket it knows. Others learn the punch
		// socket's address from where the answer comes from.
		if !(client.Addr() == req.To.Addr() && sharesNetwork(s.n.localAddresses(), remote.Addresses4)) {
			from = p.socket()
		}
	}
	s.mu.Lock()
	entry.reply, entry.socket = reply, from
	s.mu.Unlock()
	return reply, from
}

func (p *serverPunch) getPuncher() *puncher {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.puncher
}

// stop ends the wait for the client to start punching.
func (p *serverPunch) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.prepunch != nil {
		p.prepunch.Stop()
		p.prepunch = nil
	}
}

// onHolepunch answers one round of a client's holepunch exchange, as
// hyperdht's server: it takes in what the client says, waits for its own
// NAT analysis, starts punching once the client punches, and answers with
// its own state from its punch socket. It returns nil for no answer.
func (s *Server) onHolepunch(req *dhtrpc.IncomingRequest, id uint64, peerAddress netip.AddrPort, payload []byte) ([]byte, *udx.Socket) {
	s.mu.Lock()
	var h *serverPunch
	if id < uint64(len(s.punches)) {
		h = s.punches[id]
	}
	s.mu.Unlock()
	if h == nil {
		return nil, nil
	}
	select {
	case <-s.done:
		return nil, nil
	default:
	}
	h.mu.Lock()
	sp, p := h.payload, h.puncher
	h.mu.Unlock()
	if sp == nil || p == nil {
		return nil, nil // not a punching handshake: nothing to abort with
	}
	remote := sp.decrypt(payload)
	if remote == nil {
		return nil, nil
	}
	if remote.Error != ErrorNone {
		h.mu.Lock()
		h.round = max(h.round, remote.Round)
		h.mu.Unlock()
		return s.abortPunch(h, ErrorAborted)
	}
	fromRelay := s.isRelay(req.From)
	token := sp.token(peerAddress)
	echoed := fromRelay && remote.RemoteToken != nil && *remote.RemoteToken == token
	if req.Socket() == p.socket() {
		p.analysis().add(req.To, req.From)
	}
	h.mu.Lock()
	if remote.Round >= h.round {
		h.round = remote.Round
		var verified netip.Addr
		if echoed {
			verified = peerAddress.Addr()
		}
		p.updateRemote(remote.Punching, remote.Firewall, remote.Addresses, verified)
	}
	h.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	stable := p.analyze(ctx, false)
	if p.done() {
		return nil, nil
	}
	rfw, remotePunching := p.remote()
	if !remotePunching && !stable {
		stable = p.analyze(ctx, true)
		if p.done() {
			return nil, nil
		}
		if !stable {
			return s.abortPunch(h, ErrorAborted)
		}
	}
	// Fast mode: the client opened its NAT towards the address we gave,
	// so a ping back may get through at once.
	fw, addrs := p.analysis().state()
	if (fw == FirewallOpen || fw == FirewallConsistent) && remote.RemoteAddress != nil && slices.Contains(addrs, *remote.RemoteAddress) {
		p.ping(peerAddress)
	}
	if remotePunching {
		h.stop()
		if (rfw >= FirewallRandom || fw >= FirewallRandom) && s.n.randomPunchThrottled() {
			// No blind relay to wait on: the client is told to try later.
			return s.abortPunch(h, ErrorTryLater)
		}
		if !p.punch() {
			if p.done() {
				return nil, nil
			}
			return s.abortPunch(h, ErrorAborted)
		}
	}
	if fw != FirewallUnknown {
		p.analysis().freeze()
	}
	fw, addrs = p.analysis().state()
	h.mu.Lock()
	round := h.round
	h.mu.Unlock()
	p.mu.Lock()
	connected, punching := p.connected, p.punching
	p.mu.Unlock()
	answer := &HolepunchPayload{Firewall: fw, Round: round, Connected: connected, Punching: punching, Addresses: addrs, RemoteToken: remote.Token}
	if fromRelay {
		answer.Token = &token
	}
	return sp.encrypt(answer), p.socket()
}

// abortPunch ends a holepunch and tells the client why.
func (s *Server) abortPunch(h *serverPunch, code uint64) ([]byte, *udx.Socket) {
	h.mu.Lock()
	sp, p, round := h.payload, h.puncher, h.round
	h.mu.Unlock()
	msg := sp.encrypt(&HolepunchPayload{Error: code, Firewall: FirewallUnknown, Round: round})
	p.destroy(true)
	return msg, s.n.d().Socket()
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
