package relay

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/crypto/blake2b"

	"github.com/dhtrelay/dht-relay/bytequeue"
	"github.com/dhtrelay/dht-relay/hyperdht"
	"github.com/dhtrelay/dht-relay/noise"
	"github.com/dhtrelay/dht-relay/protomux"
	"github.com/dhtrelay/dht-relay/secretstream"
)

// Transport is a framed connection to a relay.
type Transport interface {
	protomux.Framed
	Close() error
}

// DialWebSocket opens the WebSocket transport to a relay at url.
func DialWebSocket(ctx context.Context, url string) (Transport, error) {
	d := *websocket.DefaultDialer
	// A client masks what it sends, so the library copies each message
	// through its write buffer and sends one fragment per buffer: with
	// the default 4 KiB, a 64 KiB data message left as sixteen writes
	// and the relay read it in sixteen. Buffers are lent only while a
	// write is under way.
	d.WriteBufferSize = maxDataChunk + 64
	d.WriteBufferPool = &sync.Pool{}
	c, _, err := d.DialContext(ctx, url, nil)
	if err != nil {
		return nil, fmt.Errorf("relay: dial %s: %w", url, err)
	}
	f := NewWebSocketFramed(c, maxClientFrame, 30*time.Second)
	f.ReadBuffersFrom(NewReadBuffers())
	return f, nil
}

// DialTCP opens the TCP transport (SecretStream over the socket) to a relay.
func DialTCP(ctx context.Context, addr string) (Transport, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("relay: dial %s: %w", addr, err)
	}
	kp, err := noise.GenerateKeyPair(rand.Reader)
	if err != nil {
		c.Close()
		return nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
	}
	ss, err := secretstream.New(c, true, secretstream.Config{KeyPair: kp, MaxMessageSize: maxClientFrame})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("relay: handshake with %s: %w", addr, err)
	}
	c.SetDeadline(time.Time{})
	return ss, nil
}

// Client-side bounds: the largest frame taken from a relay, and how much
// of one stream's data the client holds unread before it stops reading
// the relay (every stream of the client waits then: the protocol has no
// per-stream flow control).
const (
	maxClientFrame   = 32 << 20
	maxDataChunk     = 64 << 10 // one data message's share of a large write
	maxStreamBuffer  = 1 << 20
	clientAcceptSize = 16
)

// muxRoom is what a data message leaves in front of itself for the mux's
// header: a channel id and a type.
const muxRoom = 8

// ClientConfig configures a Client.
type ClientConfig struct {
	// KeyPair is the client's default key pair.
	KeyPair noise.KeyPair
	// Custodial hands secret keys to the relay; otherwise the relay asks
	// the client for every Noise message and signature.
	Custodial bool
}

// Client drives a HyperDHT node through a relay, as the JS client's Node
// does: connect, listen, lookup, announce, unannounce.
type Client struct {
	cfg  ClientConfig
	t    Transport
	mux  *protomux.Mux
	ch   *Channel
	done chan struct{}
	// blocks holds its streams' unread bytes.
	blocks bytequeue.Pool
	// writes lends its streams the buffers data messages are laid out in.
	writes sync.Pool

	mu         sync.Mutex
	err        error
	next       uint32
	connecting map[uint32]*pendingConnect // by our alias
	streams    map[uint32]*Stream         // by the relay's alias
	opening    map[uint32]*Server         // by our alias
	servers    map[uint32]*Server         // by the relay's alias
	queries    map[uint32]*query
	handshakes map[uint32]*clientHandshake
}

// ErrClientClosed is returned once the client or its relay went away.
var ErrClientClosed = errors.New("relay: client closed")

// NewClient opens the relay channel on t and sends the handshake.
func NewClient(t Transport, cfg ClientConfig) (*Client, error) {
	c := &Client{
		cfg: cfg, t: t, done: make(chan struct{}),
		connecting: map[uint32]*pendingConnect{}, streams: map[uint32]*Stream{},
		opening: map[uint32]*Server{}, servers: map[uint32]*Server{},
		queries: map[uint32]*query{}, handshakes: map[uint32]*clientHandshake{},
	}
	c.writes.New = func() any { b := make([]byte, 0, muxRoom+16+maxDataChunk); return &b }
	c.mux = protomux.New(t)
	ch, err := OpenChannel(c.mux, ChannelConfig{OnMessage: c.onMessage, OnError: c.fail, OnClose: func() { c.fail(nil) }})
	if err != nil {
		t.Close()
		return nil, err
	}
	c.ch = ch
	go c.read()
	hs := &Handshake{Custodial: cfg.Custodial, PublicKey: cfg.KeyPair.Public}
	if cfg.Custodial {
		hs.SecretKey = cfg.KeyPair.Secret
	}
	if err := ch.Send(hs); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Done is closed when the client has closed.
func (c *Client) Done() <-chan struct{} { return c.done }

// Close closes the client and everything on it.
func (c *Client) Close() error {
	c.fail(nil)
	return nil
}

func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = ErrClientClosed
	}
	c.err = err
	close(c.done)
	streams := c.streams
	c.streams = map[uint32]*Stream{}
	c.mu.Unlock()
	c.t.Close()
	for _, s := range streams {
		s.fail(err)
	}
}

func (c *Client) alias() uint32 {
	c.next++
	if c.next == 0 {
		c.next = 1
	}
	return c.next
}

func (c *Client) send(m Message) error { return c.sent(c.ch.Send(m)) }

// sent fails the client when a send to the relay failed, and returns err.
func (c *Client) sent(err error) error {
	if err != nil {
		c.fail(err)
	}
	return err
}

// wait waits for ch, the client's end or ctx.
func (c *Client) wait(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-c.done:
		return ErrClientClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// read takes the relay's frames until the transport fails. Stream data
// is copied once, from the buffer a frame was read into to the stream's
// queue, when the transport lends its buffers.
func (c *Client) read() {
	l, ok := c.t.(Lender)
	if !ok {
		c.fail(c.mux.Run())
		return
	}
	for {
		if err := ReceiveLent(c.mux, l); err != nil {
			c.fail(c.mux.End(err))
			return
		}
	}
}

// onMessage handles the relay's messages, on the transport's reader.
func (c *Client) onMessage(m Message) {
	switch m := m.(type) {
	case *Open:
		c.onOpen(m)
	case *Destroy:
		c.onDestroy(m)
	case *Data:
		c.mu.Lock()
		s := c.streams[m.Alias]
		c.mu.Unlock()
		if s != nil {
			s.deliver(m.Buffers)
		}
	case *End:
		c.mu.Lock()
		s := c.streams[m.Alias]
		c.mu.Unlock()
		if s != nil {
			s.fail(io.EOF)
		}
	case *Listening:
		c.mu.Lock()
		srv := c.opening[m.RemoteAlias]
		delete(c.opening, m.RemoteAlias)
		if srv != nil {
			srv.remote = m.Alias
			c.servers[m.Alias] = srv
		}
		c.mu.Unlock()
		if srv != nil {
			close(srv.listening)
		}
	case *Closed:
		c.mu.Lock()
		srv := c.servers[m.Alias]
		delete(c.servers, m.Alias)
		c.mu.Unlock()
		if srv != nil {
			srv.closeOnce.Do(func() { close(srv.closed) })
		}
	case *Incoming:
		c.onIncoming(m)
	case *Connection:
		c.onConnection(m)
	case *Result:
		c.mu.Lock()
		q := c.queries[m.ID]
		c.mu.Unlock()
		var a Announcers
		if q != nil && q.onResult != nil && a.UnmarshalBinary(m.Data) == nil {
			q.onResult(a)
		}
	case *Finished:
		c.mu.Lock()
		q := c.queries[m.ID]
		delete(c.queries, m.ID)
		c.mu.Unlock()
		if q != nil {
			close(q.done)
		}
	case *SignAnnounce:
		c.onSign(m, hyperdht.NSAnnounce)
	case *SignUnannounce:
		c.onSign((*SignAnnounce)(m), hyperdht.NSUnannounce)
	case *NoiseSend:
		c.onNoiseSend(m)
	case *NoiseReceive:
		c.onNoiseReceive(m)
	}
}

// ClientConn is a connection through the relay: the peer's bytes,
// decrypted by the relay (custodial) or here (otherwise).
type ClientConn struct {
	io.ReadWriteCloser
	closeWrite      func() error
	RemotePublicKey [32]byte
	HandshakeHash   [64]byte
}

// CloseWrite ends our side of the connection.
func (cc *ClientConn) CloseWrite() error { return cc.closeWrite() }

type pendingConnect struct {
	remotePK [32]byte
	kp       noise.KeyPair
	done     chan struct{}
	open     *Open
	err      error
	stream   *Stream
}

// Connect opens a connection to the server with remotePublicKey.
func (c *Client) Connect(ctx context.Context, remotePublicKey [32]byte) (*ClientConn, error) {
	p := &pendingConnect{remotePK: remotePublicKey, kp: c.cfg.KeyPair, done: make(chan struct{})}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	alias := c.alias()
	c.connecting[alias] = p
	c.mu.Unlock()
	m := &Connect{Custodial: c.cfg.Custodial, Alias: alias, PublicKey: c.cfg.KeyPair.Public, RemotePublicKey: remotePublicKey}
	if c.cfg.Custodial {
		m.SecretKey = c.cfg.KeyPair.Secret
	}
	if err := c.send(m); err != nil {
		return nil, err
	}
	if err := c.wait(ctx, p.done); err != nil {
		c.mu.Lock()
		delete(c.connecting, alias)
		s := p.stream
		c.mu.Unlock()
		if s != nil {
			s.Close()
		}
		return nil, err
	}
	if p.err != nil {
		return nil, p.err
	}
	s := p.stream
	cc := &ClientConn{ReadWriteCloser: s, closeWrite: s.CloseWrite, RemotePublicKey: remotePublicKey}
	if c.cfg.Custodial {
		cc.HandshakeHash = p.open.HandshakeHash
		return cc, nil
	}
	return c.encrypt(cc, s, p.open.HandshakeID, true)
}

// encrypt puts SecretStream, keyed by the handshake this client ran, over
// a relayed stream.
func (c *Client) encrypt(cc *ClientConn, s *Stream, hsID uint32, initiator bool) (*ClientConn, error) {
	c.mu.Lock()
	hs := c.handshakes[hsID]
	delete(c.handshakes, hsID)
	c.mu.Unlock()
	if hs == nil {
		s.Close()
		return nil, fmt.Errorf("relay: unknown handshake %d", hsID)
	}
	r, ok := hs.h.Result()
	if !ok {
		s.Close()
		return nil, errors.New("relay: handshake incomplete")
	}
	ss, err := secretstream.New(s, initiator, secretstream.Config{Keys: &secretstream.Keys{
		Tx: r.Tx, Rx: r.Rx, Hash: r.Hash, PublicKey: hs.pk, RemotePublicKey: r.RemoteStatic,
	}})
	if err != nil {
		s.Close()
		return nil, err
	}
	cc.ReadWriteCloser, cc.closeWrite, cc.HandshakeHash, cc.RemotePublicKey = ss, ss.CloseWrite, r.Hash, r.RemoteStatic
	return cc, nil
}

func (c *Client) onOpen(m *Open) {
	c.mu.Lock()
	p := c.connecting[m.RemoteAlias]
	delete(c.connecting, m.RemoteAlias)
	if p == nil {
		c.mu.Unlock()
		return
	}
	s := newStream(c, m.RemoteAlias, m.Alias)
	c.streams[m.Alias] = s
	p.open, p.stream = m, s
	c.mu.Unlock()
	close(p.done)
}

func (c *Client) onDestroy(m *Destroy) {
	err := errors.New("relay: stream destroyed")
	if m.Error != "" {
		err = errors.New(m.Error)
	}
	c.mu.Lock()
	if !m.Paired {
		p := c.connecting[m.RemoteAlias]
		delete(c.connecting, m.RemoteAlias)
		c.mu.Unlock()
		if p != nil {
			p.err = err
			close(p.done)
		}
		return
	}
	s := c.streams[m.Alias]
	delete(c.streams, m.Alias)
	c.mu.Unlock()
	if s != nil {
		s.fail(err)
	}
}

// Stream is a relayed stream's raw bytes.
type Stream struct {
	c      *Client
	alias  uint32 // ours
	remote uint32 // the relay's

	mu       sync.Mutex
	queue    bytequeue.Queue
	buffered int
	err      error // io.EOF once the peer ended
	wrote    bool  // CloseWrite or Close sent
	ready    chan struct{}
	room     chan struct{}
}

func newStream(c *Client, alias, remote uint32) *Stream {
	return &Stream{c: c, alias: alias, remote: remote, ready: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// deliver queues the relay's data, holding the relay back while the
// reader is maxStreamBuffer behind.
func (s *Stream) deliver(chunks Buffers) {
	s.mu.Lock()
	for s.buffered >= maxStreamBuffer && s.err == nil {
		s.mu.Unlock()
		select {
		case <-s.room:
		case <-s.c.done:
			return
		}
		s.mu.Lock()
	}
	if s.err == nil {
		for p := range chunks.All() {
			if len(p) == 0 {
				continue
			}
			s.queue.Push(&s.c.blocks, p)
			s.buffered += len(p)
		}
	}
	s.mu.Unlock()
	signal(s.ready)
}

func (s *Stream) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	signal(s.ready)
	signal(s.room)
}

// Read reads the peer's bytes; io.EOF once the peer ended.
func (s *Stream) Read(p []byte) (int, error) {
	for {
		s.mu.Lock()
		if !s.queue.Empty() {
			n := s.queue.Read(&s.c.blocks, p)
			s.buffered -= n
			s.mu.Unlock()
			signal(s.room)
			return n, nil
		}
		err := s.err
		s.mu.Unlock()
		if err != nil {
			return 0, err
		}
		select {
		case <-s.ready:
		case <-s.c.done:
			s.fail(ErrClientClosed)
		}
	}
}

// Write sends p to the peer.
func (s *Stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	err := s.err
	if s.wrote {
		err = net.ErrClosed
	}
	s.mu.Unlock()
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	bp := s.c.writes.Get().(*[]byte)
	defer s.c.writes.Put(bp)
	for off := 0; off < len(p); off += maxDataChunk {
		chunk := p[off:min(off+maxDataChunk, len(p))]
		// The message is laid out behind room for the mux's header, which
		// goes in front of it: the bytes are copied once here, not into an
		// encoding and again into a frame.
		b := append(AppendDataHeader((*bp)[:muxRoom], s.alias, len(chunk)), chunk...)
		*bp = b
		if err := s.c.sent(s.c.ch.SendPayloadIn(TypeData, b, muxRoom)); err != nil {
			return off, err
		}
	}
	return len(p), nil
}

// CloseWrite ends our side.
func (s *Stream) CloseWrite() error {
	s.mu.Lock()
	done := s.wrote
	s.wrote = true
	s.mu.Unlock()
	if done {
		return nil
	}
	return s.c.send(&End{Alias: s.alias})
}

// Close destroys the stream.
func (s *Stream) Close() error {
	s.mu.Lock()
	s.wrote = true
	s.mu.Unlock()
	s.fail(net.ErrClosed)
	s.c.mu.Lock()
	known := s.c.streams[s.remote] == s
	delete(s.c.streams, s.remote)
	s.c.mu.Unlock()
	if known {
		return s.c.send(&Destroy{Paired: true, Alias: s.alias})
	}
	return nil
}

// Firewall decides on an incoming connection; true denies it.
type Firewall func(remotePublicKey [32]byte, payload *hyperdht.NoisePayload) bool

// Server is a relayed server.
type Server struct {
	c         *Client
	alias     uint32
	remote    uint32
	kp        noise.KeyPair
	firewall  Firewall
	listening chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
	conns     chan *pendingAccept
}

type pendingAccept struct {
	s *Stream
	m *Connection
}

// Listen starts a server on kp; firewall (nil: allow all) decides on
// incoming connections.
func (c *Client) Listen(ctx context.Context, kp noise.KeyPair, firewall Firewall) (*Server, error) {
	srv := &Server{c: c, kp: kp, firewall: firewall, listening: make(chan struct{}), closed: make(chan struct{}), conns: make(chan *pendingAccept, clientAcceptSize)}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	srv.alias = c.alias()
	c.opening[srv.alias] = srv
	c.mu.Unlock()
	m := &Listen{Custodial: c.cfg.Custodial, Alias: srv.alias, PublicKey: kp.Public}
	if c.cfg.Custodial {
		m.SecretKey = kp.Secret
	}
	if err := c.send(m); err != nil {
		return nil, err
	}
	if err := c.wait(ctx, srv.listening); err != nil {
		return nil, err
	}
	select {
	case <-srv.closed:
		return nil, errors.New("relay: the relay refused the server")
	default:
	}
	return srv, nil
}

// Done is closed when the relay has closed the server: after Close, or at
// once when the relay refused it (the protocol has no refusal, so a refused
// server is reported listening and then closed).
func (srv *Server) Done() <-chan struct{} { return srv.closed }

// Accept waits for the next connection.
func (srv *Server) Accept(ctx context.Context) (*ClientConn, error) {
	select {
	case p := <-srv.conns:
		cc := &ClientConn{ReadWriteCloser: p.s, closeWrite: p.s.CloseWrite, RemotePublicKey: p.m.RemotePublicKey, HandshakeHash: p.m.HandshakeHash}
		if p.m.Custodial {
			return cc, nil
		}
		return srv.c.encrypt(cc, p.s, p.m.HandshakeID, false)
	case <-srv.closed:
		return nil, net.ErrClosed
	case <-srv.c.done:
		return nil, ErrClientClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close stops the server and waits until the relay confirms.
func (srv *Server) Close(ctx context.Context) error {
	if err := srv.c.send(&Close{Alias: srv.alias}); err != nil {
		return err
	}
	return srv.c.wait(ctx, srv.closed)
}

func (c *Client) onConnection(m *Connection) {
	c.mu.Lock()
	srv := c.servers[m.ServerAlias]
	if srv == nil {
		c.mu.Unlock()
		return
	}
	alias := c.alias()
	s := newStream(c, alias, m.Alias)
	c.streams[m.Alias] = s
	c.mu.Unlock()
	c.send(&Connected{Alias: alias, RemoteAlias: m.Alias})
	select {
	case srv.conns <- &pendingAccept{s: s, m: m}:
	default:
		s.Close() // nobody accepts: refuse rather than queue without bound
	}
}

func (c *Client) onIncoming(m *Incoming) {
	c.mu.Lock()
	srv := c.servers[m.ServerAlias]
	c.mu.Unlock()
	go func() {
		deny := true
		var p hyperdht.NoisePayload
		if srv != nil && p.Decode(m.Payload) == nil {
			deny = srv.firewall != nil && srv.firewall(m.RemotePublicKey, &p)
		}
		if deny {
			c.send(&Deny{ID: m.ID})
		} else {
			c.send(&Accept{ID: m.ID})
		}
	}()
}

// clientHandshake is a Noise handshake the relay runs through this
// client.
type clientHandshake struct {
	h  *noise.Handshake
	pk [32]byte
}

func (c *Client) onNoiseSend(m *NoiseSend) {
	c.mu.Lock()
	hs := c.handshakes[m.ID]
	if m.IsInitiator && hs == nil {
		if p := c.connecting[m.RemoteStreamAlias]; p != nil {
			h, err := noise.NewHandshake(noise.Config{Pattern: noise.IK, Initiator: true, Static: p.kp, RemoteStatic: p.remotePK[:], Prologue: hyperdht.NSPeerHandshake[:]})
			if err == nil {
				hs = &clientHandshake{h: h, pk: p.kp.Public}
				c.handshakes[m.ID] = hs
			}
		}
	}
	c.mu.Unlock()
	if hs == nil {
		return
	}
	msg, err := hs.h.Send(m.Payload)
	if err != nil {
		msg = nil
	}
	c.noiseReply(m.ID, m.IsInitiator, hs, msg)
}

func (c *Client) onNoiseReceive(m *NoiseReceive) {
	c.mu.Lock()
	hs := c.handshakes[m.ID]
	var srv *Server
	if !m.IsInitiator && hs == nil {
		if srv = c.servers[m.ServerAlias]; srv != nil {
			h, err := noise.NewHandshake(noise.Config{Pattern: noise.IK, Static: srv.kp, Prologue: hyperdht.NSPeerHandshake[:]})
			if err == nil {
				hs = &clientHandshake{h: h, pk: srv.kp.Public}
				c.handshakes[m.ID] = hs
			}
		}
	}
	c.mu.Unlock()
	if hs == nil {
		return
	}
	payload, err := hs.h.Recv(m.Payload)
	if err == nil && srv != nil && srv.firewall != nil {
		var p hyperdht.NoisePayload
		rs, _ := hs.h.RemoteStatic()
		if p.Decode(payload) != nil || srv.firewall(rs, &p) {
			err = errors.New("denied")
		}
	}
	if err != nil {
		payload = nil
	}
	c.noiseReply(m.ID, m.IsInitiator, hs, payload)
}

func (c *Client) noiseReply(id uint32, initiator bool, hs *clientHandshake, payload []byte) {
	r := &NoiseReply{IsInitiator: initiator, ID: id, Payload: payload}
	r.RemotePublicKey, _ = hs.h.RemoteStatic()
	if res, ok := hs.h.Result(); ok {
		r.Complete = true
		r.RemoteID = secretstream.StreamID(res.Hash[:], initiator)
		h, _ := blake2b.New256(res.Hash[:])
		h.Write(hyperdht.NSPeerHolepunch[:])
		h.Sum(r.HolepunchSecret[:0])
	}
	if payload == nil {
		c.mu.Lock()
		delete(c.handshakes, id)
		c.mu.Unlock()
	}
	c.send(r)
}

// query is a running lookup, announce or unannounce.
type query struct {
	onResult func(Announcers)
	target   [32]byte
	kp       noise.KeyPair
	done     chan struct{}
}

func (c *Client) runQuery(ctx context.Context, q *query, send func(id uint32) Message) error {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return c.err
	}
	id := c.alias()
	c.queries[id] = q
	c.mu.Unlock()
	if err := c.send(send(id)); err != nil {
		return err
	}
	err := c.wait(ctx, q.done)
	if err != nil {
		c.mu.Lock()
		delete(c.queries, id)
		c.mu.Unlock()
	}
	return err
}

// Lookup finds the peers announced on topic; onResult sees each node's
// answer.
func (c *Client) Lookup(ctx context.Context, topic [32]byte, onResult func(Announcers)) error {
	return c.runQuery(ctx, &query{onResult: onResult, done: make(chan struct{})}, func(id uint32) Message {
		return &Lookup{ID: id, Topic: topic}
	})
}

// Announce announces kp's public key on topic.
func (c *Client) Announce(ctx context.Context, topic [32]byte, kp noise.KeyPair) error {
	return c.runQuery(ctx, &query{target: topic, kp: kp, done: make(chan struct{})}, func(id uint32) Message {
		m := &Announce{Custodial: c.cfg.Custodial, ID: id, Topic: topic, PublicKey: kp.Public}
		if c.cfg.Custodial {
			m.SecretKey = kp.Secret
		}
		return m
	})
}

// Unannounce removes kp's announcement of topic.
func (c *Client) Unannounce(ctx context.Context, topic [32]byte, kp noise.KeyPair) error {
	return c.runQuery(ctx, &query{target: topic, kp: kp, done: make(chan struct{})}, func(id uint32) Message {
		m := &Unannounce{Custodial: c.cfg.Custodial, ID: id, Topic: topic, PublicKey: kp.Public}
		if c.cfg.Custodial {
			m.SecretKey = kp.Secret
		}
		return m
	})
}

// onSign signs for a query or a server of ours; requests naming neither
// are not answered.
func (c *Client) onSign(m *SignAnnounce, ns [32]byte) {
	c.mu.Lock()
	var target [32]byte
	var kp noise.KeyPair
	found := false
	if q := c.queries[m.Signee]; q != nil {
		target, kp, found = q.target, q.kp, true
	} else if srv := c.opening[m.Signee]; srv != nil {
		target, kp, found = hyperdht.Hash(srv.kp.Public[:]), srv.kp, true // announcing before listening
	} else {
		for _, srv := range c.servers {
			if srv.alias == m.Signee {
				target, kp, found = hyperdht.Hash(srv.kp.Public[:]), srv.kp, true
			}
		}
	}
	c.mu.Unlock()
	if !found || len(m.PeerID) != 32 {
		return
	}
	peer := &hyperdht.Peer{PublicKey: kp.Public, RelayAddresses: m.RelayAddresses}
	if peer.RelayAddresses == nil {
		peer.RelayAddresses = []netip.AddrPort{}
	}
	sig := hyperdht.Sign(&kp, hyperdht.AnnounceSignable(ns, target, [32]byte(m.PeerID), m.Token, peer, nil))
	c.send(&Signature{ID: m.ID, Signature: sig[:]})
}
