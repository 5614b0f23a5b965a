package worker

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/dhtrelay/dht-relay/hyperdht"
	"github.com/dhtrelay/dht-relay/relay"
	"github.com/dhtrelay/dht-relay/secretstream"
)

// server is a client's server on the node.
type server struct {
	s      *session
	id     uint32
	client uint32
	pk     [32]byte

	mu      sync.Mutex
	hs      *hyperdht.Server
	closing bool
	done    chan struct{} // closed when the server has stopped
}

// ErrKeyInUse means another session already listens on the key here.
var ErrKeyInUse = errors.New("relay: a server with this key is already listening")

func (s *session) listen(m *relay.Listen) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	_, dup := s.servers[m.Alias]
	full := len(s.servers) >= s.w.cfg.Limits.ServersPerSession
	srv := &server{s: s, client: m.Alias, pk: m.PublicKey, done: make(chan struct{})}
	if !dup && !full {
		srv.id = s.newID()
		s.servers[m.Alias] = srv
	}
	s.mu.Unlock()
	if dup {
		return
	}
	if full {
		s.refuseListen(m.Alias, fmt.Errorf("relay: too many servers (limit %d)", s.w.cfg.Limits.ServersPerSession))
		return
	}
	go srv.run(m)
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

func (srv *server) run(m *relay.Listen) {
	s := srv.s
	defer close(srv.done)
	defer func() {
		s.mu.Lock()
		if s.servers[srv.client] == srv {
			delete(s.servers, srv.client)
		}
		s.mu.Unlock()
	}()
	var cfg hyperdht.ServerConfig
	if m.Custodial {
		kp, err := keyPair(m.PublicKey, m.SecretKey)
		if err != nil {
			s.refuseListen(srv.client, err)
			return
		}
		cfg.KeyPair = kp
		cfg.Firewall = srv.firewall
	} else {
		cfg.Signer = &remoteSigner{s: s, signee: srv.client, pk: m.PublicKey}
		cfg.Handshake = func() (hyperdht.Handshaker, error) {
			s.mu.Lock()
			id := s.newID()
			s.mu.Unlock()
			return &handshaker{s: s, id: id, serverAlias: srv.id}, nil
		}
	}
	if !s.w.claimKey(m.PublicKey, srv) {
		s.refuseListen(srv.client, ErrKeyInUse)
		return
	}
	defer s.w.releaseKey(m.PublicKey, srv)
	hs, err := s.w.cfg.Node.Listen(s.ctx, cfg)
	if err != nil {
		s.refuseListen(srv.client, err)
		return
	}
	srv.mu.Lock()
	srv.hs = hs
	closing := srv.closing
	srv.mu.Unlock()
	s.send(&relay.Listening{Alias: srv.id, RemoteAlias: srv.client, Address: s.w.address()})
	if closing {
		hs.Close()
	}
	for {
		conn, err := hs.Accept(s.ctx)
		if err != nil {
			break
		}
		srv.incoming(conn)
	}
	hs.Close()
	s.send(&relay.Closed{Alias: srv.id})
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
	<-srv.done
}

// incoming hands a new connection to the client.
func (srv *server) incoming(conn *hyperdht.Conn) {
	s := srv.s
	s.mu.Lock()
	if s.ended || len(s.streams) >= s.w.cfg.Limits.StreamsPerSession {
		s.mu.Unlock()
		s.w.log.Info("incoming connection refused: stream limit", "session", s.id)
		conn.Close()
		return
	}
	id := s.newID()
	st := newStream(s, id, pipeOf(conn))
	s.streams[id] = st
	s.mu.Unlock()
	c := &relay.Connection{Custodial: conn.Stream != nil, Alias: id, ServerAlias: srv.id, RemotePublicKey: conn.RemotePublicKey}
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
	s := srv.s
	s.mu.Lock()
	id := s.newID()
	s.mu.Unlock()
	a, err := s.ask(id, &relay.Incoming{ID: id, ServerAlias: srv.id, RemotePublicKey: remotePK, Payload: payload.Encode(nil)})
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
	return r.Payload, h.remote, nil
}

// Keys stay with the client: the connection is handed over raw.
func (h *handshaker) Keys() (secretstream.Keys, bool) { return secretstream.Keys{}, false }
