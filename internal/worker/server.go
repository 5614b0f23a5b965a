package worker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/dhtrelay/dht-relay/hyperdht"
	"github.com/dhtrelay/dht-relay/internal/telemetry"
	"github.com/dhtrelay/dht-relay/relay"
	"github.com/dhtrelay/dht-relay/secretstream"
)

// server is a client's server on the node. When its session ends without
// closing it, it stays announced for Grace, refusing connections, and a
// session that proves the key (custodial: the secret key) takes it over.
type server struct {
	pk     [32]byte
	ctx    context.Context // the server's own: it can outlive its session
	cancel context.CancelFunc

	mu      sync.Mutex
	s       *session // the owner; changes on a handover
	id      uint32   // the owner's alias for it
	client  uint32   // the owner's client's alias for it
	hs      *hyperdht.Server
	closing bool
	grace   *time.Timer   // set while orphaned
	done    chan struct{} // closed when the server has stopped
}

// Grace is how long a server outlives a session that ended without
// closing it.
const Grace = 30 * time.Second

// owner returns the server's session and aliases.
func (srv *server) owner() (*session, uint32, uint32) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.s, srv.id, srv.client
}

// ErrKeyInUse means another session already listens on the key here.
var ErrKeyInUse = errors.New("relay: a server with this key is already listening")

func (s *session) listen(m *relay.Listen, span trace.Span) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		telemetry.End(span, ErrSessionEnded)
		return
	}
	_, dup := s.servers[m.Alias]
	full := len(s.servers) >= s.w.cfg.Limits.ServersPerSession
	s.mu.Unlock()
	if dup {
		telemetry.End(span, errDuplicate)
		return
	}
	if full {
		err := fmt.Errorf("%w (limit %d)", ErrTooManyServers, s.w.cfg.Limits.ServersPerSession)
		s.refuseListen(m.Alias, err)
		s.w.cfg.Telemetry.Metrics.Error("too_many_servers")
		telemetry.End(span, err)
		return
	}
	if srv := s.w.orphaned(m.PublicKey); srv != nil {
		// Proving the key may mean asking the client: not on the
		// endpoint's goroutine.
		go s.adopt(srv, m, span)
		return
	}
	s.serve(m, span)
}

// serve starts a new server for the client's listen.
func (s *session) serve(m *relay.Listen, span trace.Span) {
	ctx, cancel := context.WithCancel(context.Background())
	srv := &server{s: s, client: m.Alias, pk: m.PublicKey, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	s.mu.Lock()
	srv.id = s.newID()
	put(&s.servers, m.Alias, srv)
	s.mu.Unlock()
	go srv.run(m, span)
}

// ErrTooManyServers means a session reached its servers limit.
var ErrTooManyServers = errors.New("relay: too many servers")

// orphaned returns the server on pk if it is in its grace period.
func (w *Worker) orphaned(pk [32]byte) *server {
	w.mu.Lock()
	srv := w.keys[pk]
	w.mu.Unlock()
	if srv == nil {
		return nil
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.grace == nil || srv.closing {
		return nil // a live server: run refuses the key as in use
	}
	return srv
}

// adopt hands srv, in its grace period, to the session s asking to listen
// on its key, if s proves the key (proveKey). A session that cannot is
// refused while the server waits for its owner; if the grace runs out
// meanwhile, s listens afresh.
func (s *session) adopt(srv *server, m *relay.Listen, span trace.Span) {
	defer s.contain()
	if err := s.proveKey(m); err != nil {
		s.refuseListen(m.Alias, err)
		s.w.cfg.Telemetry.Metrics.Error("takeover_refused")
		span.SetAttributes(attribute.Bool("dhtrelay.handover", false))
		telemetry.End(span, err)
		return
	}
	s.mu.Lock()
	id := s.newID()
	put(&s.servers, m.Alias, srv)
	s.mu.Unlock()
	srv.mu.Lock()
	if srv.closing || srv.grace == nil || !srv.grace.Stop() {
		srv.mu.Unlock()
		s.mu.Lock()
		delete(s.servers, m.Alias)
		s.mu.Unlock()
		s.serve(m, span)
		return
	}
	srv.grace = nil
	srv.s, srv.id, srv.client = s, id, m.Alias
	srv.mu.Unlock()
	s.w.log.Info("server handed over to a reconnected session", "session", s.id)
	s.send(&relay.Listening{Alias: id, RemoteAlias: m.Alias, Address: s.w.address()})
	span.SetAttributes(attribute.Bool("dhtrelay.handover", true))
	telemetry.End(span, nil)
}

// proveKey checks that the client asking to listen holds the key: a
// custodial client sent the secret key, which must be the public key's; a
// non-custodial client is asked to sign an announce of its key carrying a
// token and node id drawn at random here, which only the key's holder can
// sign and nobody can replay.
func (s *session) proveKey(m *relay.Listen) error {
	if m.Custodial {
		if _, err := keyPair(m.PublicKey, m.SecretKey); err != nil {
			return ErrNoProof
		}
		return nil
	}
	var nodeID, token [32]byte
	rand.Read(nodeID[:])
	rand.Read(token[:])
	target := hyperdht.Hash(m.PublicKey[:])
	peer := &hyperdht.Peer{PublicKey: m.PublicKey}
	signer := &remoteSigner{s: s, signee: m.Alias, pk: m.PublicKey}
	sig, err := signer.Sign(s.ctx, hyperdht.NSAnnounce, target, nodeID, token, peer)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNoProof, err)
	}
	if !hyperdht.Verify(m.PublicKey, hyperdht.AnnounceSignable(hyperdht.NSAnnounce, target, nodeID, token, peer, nil), sig) {
		return fmt.Errorf("%w: bad signature", ErrNoProof)
	}
	return nil
}

// ErrNoProof means a session asked to listen on a key whose server is
// waiting for its owner, without proving the key.
var ErrNoProof = errors.New("relay: the key's server awaits its owner; listening on it needs proof of the key")

// orphan keeps srv announced for Grace after its session ended; then it
// closes unless a session took it over.
func (srv *server) orphan() {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.closing || srv.grace != nil {
		return
	}
	srv.grace = time.AfterFunc(Grace, func() {
		srv.mu.Lock()
		orphaned := srv.grace != nil
		srv.mu.Unlock()
		if orphaned {
			srv.close()
		}
	})
}

// refuseListen tells the client its server stopped as soon as it started:
// the protocol has no refusal, and a client waiting for listening would
// otherwise wait forever.
func (s *session) refuseListen(client uint32, err error) {
	s.w.log.Info("listen refused", "session", s.id, "err", err)
	s.mu.Lock()
	id := s.newID()
	s.mu.Unlock()
	s.send(&relay.Listening{Alias: id, RemoteAlias: client})
	s.send(&relay.Closed{Alias: id})
}

// run sets the server up and serves it until it closes; span ends once it
// listens or has failed to.
func (srv *server) run(m *relay.Listen, span trace.Span) {
	s := srv.s // the first owner, for setting up
	defer close(srv.done)
	defer srv.cancel()
	defer func() {
		owner, _, client := srv.owner()
		owner.mu.Lock()
		if owner.servers[client] == srv {
			delete(owner.servers, client)
		}
		owner.mu.Unlock()
	}()
	// First to run: a panic ends the server's owner alone, and the
	// deferred cleanup above still runs.
	defer func() {
		if v := recover(); v != nil {
			owner, _, _ := srv.owner()
			go owner.end(owner.w.recovered(v, owner.id), true)
		}
	}()
	var cfg hyperdht.ServerConfig
	if m.Custodial {
		kp, err := keyPair(m.PublicKey, m.SecretKey)
		if err != nil {
			s.refuseListen(srv.client, err)
			telemetry.End(span, err)
			return
		}
		cfg.KeyPair = kp
		cfg.Firewall = srv.firewall
	} else {
		// Signing and handshakes go to whichever session owns the
		// server when they happen: it may have been handed over.
		cfg.Signer = ownerSigner{srv}
		cfg.Handshake = func() (hyperdht.Handshaker, error) {
			owner, alias, _ := srv.owner()
			owner.mu.Lock()
			id := owner.newID()
			owner.mu.Unlock()
			return &handshaker{s: owner, id: id, serverAlias: alias}, nil
		}
	}
	if !s.w.claimKey(m.PublicKey, srv) {
		s.refuseListen(srv.client, ErrKeyInUse)
		s.w.cfg.Telemetry.Metrics.Error("key_in_use")
		telemetry.End(span, ErrKeyInUse)
		return
	}
	defer s.w.releaseKey(m.PublicKey, srv)
	hs, err := s.w.cfg.Node.Listen(s.ctx, cfg)
	if err != nil {
		s.refuseListen(srv.client, err)
		s.w.cfg.Telemetry.Metrics.Error("listen_failed")
		telemetry.End(span, err)
		return
	}
	srv.mu.Lock()
	srv.hs = hs
	closing := srv.closing
	srv.mu.Unlock()
	s.send(&relay.Listening{Alias: srv.id, RemoteAlias: srv.client, Address: s.w.address()})
	telemetry.End(span, nil)
	if closing {
		hs.Close()
	}
	for {
		conn, err := hs.Accept(srv.ctx)
		if err != nil {
			break
		}
		srv.incoming(conn)
	}
	hs.Close()
	owner, id, _ := srv.owner()
	owner.send(&relay.Closed{Alias: id})
}

// close stops the server and waits until it has unannounced.
func (srv *server) close() {
	srv.mu.Lock()
	srv.closing = true
	hs := srv.hs
	srv.mu.Unlock()
	if hs != nil {
		hs.Close()
	}
	srv.cancel()
	<-srv.done
}

// incoming hands a new connection to the client.
func (srv *server) incoming(conn *hyperdht.Conn) {
	s, srvID, _ := srv.owner()
	var refused error
	if s.w.overBudget() {
		refused = ErrWorkerBudget
	}
	s.mu.Lock()
	if refused == nil && len(s.streams) >= s.w.cfg.Limits.StreamsPerSession {
		refused = ErrTooManyStreams
	}
	if s.ended || refused != nil {
		s.mu.Unlock()
		if refused != nil {
			s.w.cfg.Telemetry.Metrics.Error(s.logFailure("incoming connection", refused))
		}
		conn.Close()
		return
	}
	id := s.newID()
	st := newStream(s, id, pipeOf(conn))
	put(&s.streams, id, st)
	s.mu.Unlock()
	c := &relay.Connection{Custodial: conn.Stream != nil, Alias: id, ServerAlias: srvID, RemotePublicKey: conn.RemotePublicKey}
	if c.Custodial {
		c.HandshakeHash = conn.Stream.HandshakeHash()
	} else if h, ok := conn.Handshaker.(*handshaker); ok {
		c.HandshakeID = h.id
	}
	s.send(c)
	st.start()
}

// firewall asks a custodial client whether to take a connection.
func (srv *server) firewall(remotePK [32]byte, payload *hyperdht.NoisePayload, _ netip.AddrPort) bool {
	s, srvID, _ := srv.owner()
	s.mu.Lock()
	id := s.newID()
	s.mu.Unlock()
	a, err := s.ask(id, &relay.Incoming{ID: id, ServerAlias: srvID, RemotePublicKey: remotePK, Payload: payload.Encode(nil)})
	if err != nil {
		return true
	}
	_, allow := a.(*relay.Accept)
	return !allow
}

// address is where the node's servers are reached, as the JS relay's
// server.address() reports it.
func (w *Worker) address() netip.AddrPort {
	d := w.cfg.Node.DHT()
	if a := d.PublicAddr(); a.IsValid() {
		return a
	}
	return d.ServerSocket().LocalAddr()
}

// remoteSigner asks a non-custodial client to sign; signee names, for the
// client, the query or server the signature is for.
type remoteSigner struct {
	s      *session
	signee uint32
	pk     [32]byte
}

func (r *remoteSigner) PublicKey() [32]byte { return r.pk }

// ErrNoSignature means the client answered a sign request without a
// 64-byte signature.
var ErrNoSignature = errors.New("relay: client sent no signature")

func (r *remoteSigner) Sign(_ context.Context, ns, _, nodeID, token [32]byte, peer *hyperdht.Peer) ([64]byte, error) {
	s := r.s
	s.mu.Lock()
	id := s.newID()
	s.mu.Unlock()
	req := &relay.SignAnnounce{ID: id, Signee: r.signee, Token: token, PeerID: nodeID[:], RelayAddresses: peer.RelayAddresses}
	var m relay.Message = req
	if ns == hyperdht.NSUnannounce {
		m = (*relay.SignUnannounce)(req)
	}
	a, err := s.ask(id, m)
	if err != nil {
		return [64]byte{}, err
	}
	sig, ok := a.(*relay.Signature)
	if !ok || len(sig.Signature) != 64 {
		return [64]byte{}, ErrNoSignature
	}
	return [64]byte(sig.Signature), nil
}

// ownerSigner signs a server's announces by asking the client of the
// session that owns the server at the time.
type ownerSigner struct{ srv *server }

func (o ownerSigner) PublicKey() [32]byte { return o.srv.pk }

func (o ownerSigner) Sign(ctx context.Context, ns, target, nodeID, token [32]byte, peer *hyperdht.Peer) ([64]byte, error) {
	owner, _, client := o.srv.owner()
	return (&remoteSigner{s: owner, signee: client, pk: o.srv.pk}).Sign(ctx, ns, target, nodeID, token, peer)
}

// handshaker runs a connection's Noise handshake on a non-custodial
// client, one message at a time: the JS client fails hard on a second
// message for a finished handshake, so each is sent exactly once.
type handshaker struct {
	s           *session
	id          uint32
	initiator   bool
	streamAlias uint32 // initiator: the client's alias of the connect
	serverAlias uint32 // responder: this side's alias of the server
	remote      [32]byte

	mu       sync.Mutex
	sent     int
	received int
	secret   *[32]byte // the holepunch secret, once the client says complete
}

// ErrHandshakeDenied means the client refused the handshake (its firewall
// denied it) or sent no Noise message.
//
//lint:ignore ST1005 the JS relay's own words for it
var ErrHandshakeDenied = errors.New("Handshake denied")

// errHandshakeStep means the node asked for a handshake step it already
// took; the client is not asked twice.
var errHandshakeStep = errors.New("relay: handshake step repeated")

func (h *handshaker) step(counter *int) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if *counter > 0 {
		return errHandshakeStep
	}
	*counter++
	return nil
}

func (h *handshaker) Send(payload []byte) ([]byte, error) {
	if err := h.step(&h.sent); err != nil {
		return nil, err
	}
	a, err := h.s.ask(h.id, &relay.NoiseSend{IsInitiator: h.initiator, ID: h.id, RemoteStreamAlias: h.streamAlias, Payload: payload})
	if err != nil {
		return nil, err
	}
	r, ok := a.(*relay.NoiseReply)
	if !ok || len(r.Payload) == 0 {
		return nil, ErrHandshakeDenied
	}
	h.complete(r)
	return r.Payload, nil
}

func (h *handshaker) Recv(msg []byte) ([]byte, [32]byte, error) {
	if err := h.step(&h.received); err != nil {
		return nil, [32]byte{}, err
	}
	a, err := h.s.ask(h.id, &relay.NoiseReceive{IsInitiator: h.initiator, ID: h.id, ServerAlias: h.serverAlias, Payload: msg})
	if err != nil {
		return nil, [32]byte{}, err
	}
	r, ok := a.(*relay.NoiseReply)
	if !ok || len(r.Payload) == 0 {
		return nil, [32]byte{}, ErrHandshakeDenied
	}
	if !h.initiator {
		h.remote = r.RemotePublicKey
	}
	h.complete(r)
	return r.Payload, h.remote, nil
}

func (h *handshaker) complete(r *relay.NoiseReply) {
	if !r.Complete {
		return
	}
	h.mu.Lock()
	secret := r.HolepunchSecret
	h.secret = &secret
	h.mu.Unlock()
}

// HolepunchSecret is the one the client derived from its handshake.
func (h *handshaker) HolepunchSecret() ([32]byte, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.secret == nil {
		return [32]byte{}, false
	}
	return *h.secret, true
}

// Keys stay with the client: the connection is handed over raw.
func (h *handshaker) Keys() (secretstream.Keys, bool) { return secretstream.Keys{}, false }
