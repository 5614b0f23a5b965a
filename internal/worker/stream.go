package worker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/dhtrelay/dht-relay/dhtrpc"
	"github.com/dhtrelay/dht-relay/hyperdht"
	"github.com/dhtrelay/dht-relay/internal/routing"
	"github.com/dhtrelay/dht-relay/internal/telemetry"
	"github.com/dhtrelay/dht-relay/relay"
	"github.com/dhtrelay/dht-relay/secretstream"
	"github.com/dhtrelay/dht-relay/udx"
)

// pipe is a connection's byte stream: SecretStream for a custodial client,
// the raw UDX stream when the client holds the keys.
type pipe interface {
	io.ReadWriteCloser
	CloseWrite() error
}

// stream is one relayed connection: a reader pump sends the peer's bytes to
// the edge against the edge's credit; a writer pump writes the client's
// bytes to the peer and grants credit as they go.
type stream struct {
	s       *session
	id      uint32
	conn    pipe
	gate    *routing.Gate
	written chan struct{} // capacity 1: the writer's wake-up
	ends    messageEnds   // where the peer's messages end; the reader pump's

	mu        sync.Mutex
	client    uint32
	ledger    routing.Ledger
	queue     []chunk
	relayed   int64 // both directions, against --stream-bytes
	ended     bool  // the client ended its side
	destroyed bool
	pumps     int // pumps still running
}

// chunk is a frame of client data waiting for the peer, its buffers still
// encoded: a frame of many tiny buffers is held at the cost of its bytes.
// A chunk with message set holds no data: it says that the next message
// bytes are one write (routing.KindMessage).
type chunk struct {
	bufs    relay.Buffers
	lease   routing.Lease
	message uint64
}

// messageBeginner is a pipe that sends a write arriving in parts as one
// message (secretstream); the raw UDX stream of a non-custodial client
// carries bytes the client framed itself.
type messageBeginner interface {
	BeginMessage(n int) error
}

func newStream(s *session, id uint32, conn pipe) *stream {
	s.w.cfg.Telemetry.Metrics.Stream(1)
	return &stream{s: s, id: id, conn: conn, gate: routing.NewGate(), written: make(chan struct{}, 1), pumps: 2}
}

func (st *stream) start() {
	if d := st.s.w.cfg.Limits.Caps.StreamDuration; d > 0 {
		t := time.AfterFunc(d, func() { st.fail(ErrStreamDuration) })
		context.AfterFunc(st.s.ctx, func() { t.Stop() })
	}
	go st.readPump()
	go st.writePump()
}

// Caps an operator may set on relayed data (limits.Caps).
var (
	ErrStreamDuration = errors.New("relay: stream reached its time limit")
	ErrStreamBytes    = errors.New("relay: stream reached its byte limit")
)

// relay accounts n bytes relayed by the stream against the caps that are
// set: it waits for the session's byte rate, and fails once the stream's
// bytes are spent.
func (st *stream) relay(n int) error {
	caps := st.s.w.cfg.Limits.Caps
	if st.s.bytes != nil {
		if err := st.s.bytes.WaitN(st.s.ctx, n); err != nil {
			return err
		}
	}
	if caps.StreamBytes > 0 {
		st.mu.Lock()
		st.relayed += int64(n)
		over := st.relayed > caps.StreamBytes
		st.mu.Unlock()
		if over {
			return ErrStreamBytes
		}
	}
	return nil
}

// chunkReader is a pipe that lends the bytes it read with room in front
// for the frame's headers (secretstream: where they were decrypted).
type chunkReader interface {
	ReadChunk(max, room int) ([]byte, error)
}

// messageReader is a chunkReader that reads messages (secretstream): it
// tells how much of the message being read is still to come, and lets
// each message be refused by its length before its body is read.
type messageReader interface {
	Unread() int
	AdmitMessages(fn func(n int) error)
}

func (st *stream) readPump() {
	defer st.s.contain()
	// The bytes are read behind room for the frame's headers, and sent
	// from where they were read.
	cr, lends := st.conn.(chunkReader)
	mr, framed := st.conn.(messageReader)
	inMessage := false // a message is being sent in parts
	counted := 0       // what of it is counted in the worker's held bytes
	defer func() { st.s.w.held.messages.Add(-int64(counted)) }()
	if framed {
		// Runs inside ReadChunk, on this goroutine, when a message's
		// length arrives: one longer than the credit window is held past
		// what credit bounds until the client takes it, so it is counted
		// from now on, and refused while the worker's budget is spent.
		mr.AdmitMessages(func(n int) error {
			if n <= routing.Window {
				return nil
			}
			if !st.s.w.takeMessage(n) {
				return ErrWorkerBudget
			}
			counted = n
			return nil
		})
	}
	raw, _ := st.conn.(atLeastReader) // the raw UDX stream, where it does not lend
	var buf []byte
	if !lends {
		buf = make([]byte, routing.DataRoom+routing.MaxRawChunk)
	}
	for {
		n, err := st.gate.Take(st.s.ctx, 1, routing.MaxChunk)
		if err != nil {
			st.pumpDone()
			return
		}
		var k int
		if lends {
			buf, err = cr.ReadChunk(n, routing.DataRoom)
			k = max(len(buf)-routing.DataRoom, 0)
		} else {
			k, n, err = st.readRaw(raw, buf[routing.DataRoom:], n)
		}
		if k < n {
			st.gate.Return(n - k)
		}
		if k > 0 {
			if cerr := st.relay(k); cerr != nil {
				st.fail(cerr)
				st.pumpDone()
				return
			}
			if framed {
				// A message of the peer's that goes in parts is announced
				// with its length, for the edge to hand the client whole.
				left := mr.Unread()
				if !inMessage && left > 0 {
					st.s.sendFrame(routing.KindMessage, routing.AppendMessage(nil, routing.Message{Alias: st.id, Bytes: uint64(k + left)}))
				}
				inMessage = left > 0
				st.s.w.held.messages.Add(int64(left - counted))
				counted = left
			}
			st.s.sendData(st.id, buf[:routing.DataRoom+k])
			st.s.w.cfg.Telemetry.Metrics.Relayed(true, k)
		}
		if errors.Is(err, io.EOF) {
			st.s.send(&relay.End{Alias: st.id})
			st.pumpDone()
			return
		}
		if err != nil {
			st.fail(err)
			st.pumpDone()
			return
		}
	}
}

func (st *stream) writePump() {
	defer st.s.contain()
	for {
		st.mu.Lock()
		for len(st.queue) == 0 && !st.ended && !st.destroyed {
			st.mu.Unlock()
			select {
			case <-st.written:
			case <-st.s.ctx.Done():
				st.pumpDone()
				return
			}
			st.mu.Lock()
		}
		if st.destroyed {
			st.mu.Unlock()
			st.pumpDone()
			return
		}
		if len(st.queue) == 0 { // ended, all written
			st.mu.Unlock()
			st.conn.CloseWrite()
			st.pumpDone()
			return
		}
		c := st.queue[0]
		st.queue[0] = chunk{}
		st.queue = st.queue[1:]
		st.mu.Unlock()
		if c.message > 0 {
			if err := st.beginMessage(c.message); err != nil {
				st.fail(err)
				st.pumpDone()
				return
			}
			continue
		}
		err := st.writeFrame(c.bufs)
		st.s.w.held.queued.Add(-int64(c.bufs.Size()))
		c.lease.Release() // Write has copied the bytes
		if err != nil {
			st.fail(err)
			st.pumpDone()
			return
		}
	}
}

// writeFrame writes a frame's buffers to the peer, each a write of its own
// (a SecretStream message), granting the client credit as they go.
func (st *stream) writeFrame(bufs relay.Buffers) error {
	for p := range bufs.All() {
		if len(p) == 0 {
			continue
		}
		if err := st.relay(len(p)); err != nil {
			return err
		}
		if _, err := st.conn.Write(p); err != nil {
			return err
		}
		st.s.w.cfg.Telemetry.Metrics.Relayed(false, len(p))
		st.mu.Lock()
		grant := st.ledger.Consume(len(p))
		client := st.client
		st.mu.Unlock()
		if grant > 0 {
			st.s.sendFrame(routing.KindCredit, routing.AppendCredit(nil, routing.Credit{Alias: client, Bytes: grant}))
		}
	}
	return nil
}

func (st *stream) wake() {
	select {
	case st.written <- struct{}{}:
	default:
	}
}

// push queues the client's bytes for the peer; lease holds their buffer.
func (st *stream) push(bufs relay.Buffers, lease routing.Lease) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	n := bufs.Bytes()
	if n == 0 || st.ended || st.destroyed {
		lease.Release()
		return nil
	}
	if err := st.ledger.Receive(n); err != nil {
		lease.Release()
		return err
	}
	st.queue = append(st.queue, chunk{bufs: bufs, lease: lease})
	st.s.w.held.queued.Add(int64(bufs.Size()))
	st.wake()
	return nil
}

// message queues the news that the next n bytes are one write.
func (st *stream) message(n uint64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.ended || st.destroyed {
		return
	}
	st.queue = append(st.queue, chunk{message: n})
	st.wake()
}

// beginMessage begins a message of n bytes on a pipe that frames them. A
// write longer than a SecretStream message can carry goes on in messages
// of its own, as before it was announced; the JS relay fails its stream.
func (st *stream) beginMessage(n uint64) error {
	mb, ok := st.conn.(messageBeginner)
	if !ok || n > secretstream.MaxMessageSize {
		return nil
	}
	return mb.BeginMessage(int(n))
}

func (st *stream) end() {
	st.mu.Lock()
	st.ended = true
	st.mu.Unlock()
	st.wake()
}

// fail ends the stream because its connection to the peer failed: the
// cause is logged and counted, and the client learns it.
func (st *stream) fail(err error) {
	st.mu.Lock()
	destroyed := st.destroyed // then err is only the pump seeing it closed
	st.mu.Unlock()
	if destroyed {
		return
	}
	st.s.w.cfg.Telemetry.Metrics.Error(st.s.logFailure("stream", err))
	st.destroy(err, true)
}

// destroy ends the stream at once; with tell set the client learns why.
func (st *stream) destroy(err error, tell bool) {
	st.mu.Lock()
	if st.destroyed {
		st.mu.Unlock()
		return
	}
	st.destroyed = true
	for _, c := range st.queue {
		st.s.w.held.queued.Add(-int64(c.bufs.Size()))
		c.lease.Release()
	}
	st.queue = nil
	st.mu.Unlock()
	st.gate.Close(ErrSessionEnded)
	st.conn.Close()
	st.wake()
	if tell {
		d := &relay.Destroy{Paired: true, Alias: st.id}
		if err != nil {
			d.Error = errorText(err)
		}
		st.s.send(d)
	}
}

// pumpDone retires a pump; the second one to finish frees the stream.
func (st *stream) pumpDone() {
	st.mu.Lock()
	st.pumps--
	last := st.pumps == 0
	client := st.client
	st.mu.Unlock()
	if !last {
		return
	}
	st.conn.Close()
	s := st.s
	s.w.cfg.Telemetry.Metrics.Stream(-1)
	s.mu.Lock()
	delete(s.streams, st.id)
	if s.byClient[client] == st {
		delete(s.byClient, client)
	}
	s.mu.Unlock()
	s.sendFrame(routing.KindGone, routing.AppendGone(nil, routing.Gone{Alias: st.id, ClientAlias: client}))
}

// Reasons a connect is refused before it starts.
var (
	ErrAliasInUse     = errors.New("relay: stream alias in use")
	ErrTooManyStreams = errors.New("relay: too many streams")
)

// errorKind names a failed connect or stream for metrics, traces and
// logs: hyperdht's error code, or one of a fixed few; fault tells whether
// the relay, rather than the client, its peer or the network, is to blame.
func errorKind(err error) (kind string, fault bool) {
	for _, k := range []struct {
		err   error
		kind  string
		fault bool
	}{
		{ErrAliasInUse, "alias_in_use", false},
		{ErrTooManyStreams, "too_many_streams", false},
		{ErrWorkerBudget, "worker_budget", false},
		{ErrSessionEnded, "session_ended", false},
		{ErrBadKeyPair, "bad_key_pair", false},
		{ErrAnswerTimeout, "answer_timeout", false},
		{dhtrpc.ErrBusy, "dht_busy", true},
		{udx.ErrReset, "stream_reset", false},
		{udx.ErrTimeout, "stream_timeout", false},
		{secretstream.ErrDecrypt, "stream_decrypt", false},
		{context.DeadlineExceeded, "connect_timeout", false},
		{ErrInternal, "panic", true},
		{ErrStreamDuration, "stream_duration", false},
		{ErrStreamBytes, "stream_bytes", false},
	} {
		if errors.Is(err, k.err) {
			return k.kind, k.fault
		}
	}
	if e, ok := errors.AsType[*hyperdht.Error](err); ok {
		return e.Code, false // PEER_NOT_FOUND, PEER_CONNECTION_FAILED, ...
	}
	return "other", true
}

// logFailure logs a failed connect or stream with its cause: at debug
// when the client, its peer or the network is to blame, at warn when the
// relay is.
func (s *session) logFailure(what string, err error) string {
	kind, fault := errorKind(err)
	level := slog.LevelDebug
	if fault {
		level = slog.LevelWarn
	}
	s.w.log.Log(context.Background(), level, what+" failed", "session", s.id, "kind", kind, "err", err)
	return kind
}

// connect opens a connection for the client: custodial with its key pair,
// otherwise with the client running the handshake and the stream raw.
// span ends once the connection is open or has failed.
func (s *session) connect(m *relay.Connect, span trace.Span) {
	// Asked before the session's lock: it reads the worker's UDX, and
	// nothing another package runs should run under the lock that the
	// session's every frame takes.
	over := s.w.overBudget()
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		telemetry.End(span, ErrSessionEnded)
		return
	}
	_, dup := s.byClient[m.Alias]
	full := len(s.streams)+s.dialing >= s.w.cfg.Limits.StreamsPerSession
	spent := !dup && !full && over
	var id, hsID uint32
	if !dup && !full && !spent {
		id = s.newID()
		hsID = s.newID()
		put(&s.byClient, m.Alias, nil) // reserved until the connection opens
		s.dialing++
	}
	s.mu.Unlock()
	metrics := s.w.cfg.Telemetry.Metrics
	fail := func(err error) {
		kind := s.logFailure("connect", err)
		span.SetAttributes(attribute.String("dhtrelay.result", kind))
		telemetry.End(span, err)
		metrics.Error(kind)
		s.send(&relay.Destroy{RemoteAlias: m.Alias, Error: errorText(err)})
	}
	switch {
	case dup:
		fail(ErrAliasInUse)
		return
	case full:
		fail(ErrTooManyStreams)
		return
	case spent:
		fail(ErrWorkerBudget)
		return
	}
	go func() {
		defer s.contain()
		start := time.Now()
		conn, hs, err := s.dial(m, hsID)
		if err != nil {
			kind, _ := errorKind(err)
			metrics.Connect(time.Since(start), kind)
		} else {
			metrics.Connect(time.Since(start), "ok")
		}
		s.mu.Lock()
		s.dialing--
		if err == nil && s.ended {
			err = ErrSessionEnded
		}
		if err != nil {
			delete(s.byClient, m.Alias)
			s.mu.Unlock()
			if conn != nil {
				conn.Close()
			}
			fail(err)
			return
		}
		st := newStream(s, id, pipeOf(conn))
		st.client = m.Alias
		put(&s.streams, id, st)
		put(&s.byClient, m.Alias, st)
		s.mu.Unlock()
		open := &relay.Open{Custodial: m.Custodial, Alias: id, RemoteAlias: m.Alias}
		if m.Custodial {
			open.HandshakeHash = conn.Stream.HandshakeHash()
		} else {
			open.HandshakeID = hs.id
		}
		s.send(open)
		st.start()
		telemetry.End(span, nil)
	}()
}

func (s *session) dial(m *relay.Connect, hsID uint32) (*hyperdht.Conn, *handshaker, error) {
	ctx, cancel := context.WithTimeout(s.ctx, connectTimeout)
	defer cancel()
	var cfg hyperdht.ClientConfig
	var hs *handshaker
	if m.Custodial {
		kp, err := keyPair(m.PublicKey, m.SecretKey)
		if err != nil {
			return nil, nil, err
		}
		cfg.KeyPair = kp
	} else {
		hs = &handshaker{s: s, id: hsID, initiator: true, streamAlias: m.Alias, remote: m.RemotePublicKey}
		cfg.Handshake = hs
	}
	conn, err := s.w.cfg.Node.Connect(ctx, m.RemotePublicKey, cfg)
	return conn, hs, err
}

func pipeOf(c *hyperdht.Conn) pipe {
	if c.Stream != nil {
		return c.Stream
	}
	return c.Raw
}

// connected binds the client's alias to an incoming connection.
func (s *session) connected(m *relay.Connected) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[m.RemoteAlias]
	if _, taken := s.byClient[m.Alias]; st == nil || taken { // taken: bound, or reserved by a connect
		return
	}
	st.mu.Lock()
	bound := st.client != 0
	if !bound {
		st.client = m.Alias
	}
	st.mu.Unlock()
	if !bound {
		put(&s.byClient, m.Alias, st)
	}
}

func (s *session) data(m *relay.Data, lease routing.Lease) {
	st := s.clientStream(m.Alias)
	if st == nil {
		lease.Release()
		return // not open, or gone: the JS relay drops these too
	}
	if err := st.push(m.Buffers, lease); err != nil {
		s.endSoon(err, true)
	}
}
