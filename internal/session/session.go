// Package session is one relayed client on an edge: it runs the
// @hyperswarm/dht-relay channel on the client's transport, owns the
// client's stream alias table and the credit of each stream, enforces the
// limits, and forwards the client's requests to the session's worker and
// the worker's messages to the client.
//
// Toward the client, messages leave in the order the worker sent them,
// except that Noise, signing and firewall requests, which hold a
// handshake up and carry no stream data, go ahead of queued stream data.
// Stream data in either direction moves only against credit (package
// routing), so a session holds at most routing.Window bytes per stream and
// direction, and a slow client slows its peers. On a transport that can
// park its reader (Parker), a session holds no goroutine between client
// messages, which is most of an idle client's life.
package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/dhtrelay/dht-relay/compact"
	"github.com/dhtrelay/dht-relay/internal/limits"
	"github.com/dhtrelay/dht-relay/internal/routing"
	"github.com/dhtrelay/dht-relay/internal/telemetry"
	"github.com/dhtrelay/dht-relay/protomux"
	"github.com/dhtrelay/dht-relay/relay"
)

// Opener opens a session on a worker for a client's handshake; frames
// from the worker go to handle, a broken link to fail.
type Opener interface {
	Open(ctx context.Context, id string, hs *relay.Handshake, handle func(routing.Frame), fail func(error)) (link *routing.Link, worker string, err error)
}

// HandshakeFrame is the largest message a client may send before its
// session is open at a worker: its handshake is some 100 bytes, and
// until it has said who it is a client gets no room for more. The edge
// makes its transports with this limit; the session raises it to
// --max-frame once open.
const HandshakeFrame = 64 << 10

// readLimiter is a transport whose read limit may change while it reads.
type readLimiter interface{ SetReadLimit(n int64) }

// Transport is a client's framed connection.
type Transport interface {
	protomux.Framed
	Close() error
}

// Config configures a Session.
type Config struct {
	ID     string
	Framed Transport
	Opener Opener
	Limits *limits.Limits // shared by the edge's sessions
	// Remote is the client's address, for logs.
	Remote string
	// Logger is shared by the edge's sessions: each names itself in the
	// records it logs, which costs nothing while it is idle, where a
	// logger of its own would keep its attributes preformatted.
	Logger *slog.Logger
	// Tracer traces the operations the session forwards (nil: none).
	Tracer  trace.Tracer
	OnClose func() // runs once the session is over
	// Budget is the edge's, which the stream data queued for the client
	// counts against (nil: none).
	Budget Budget
	// Batches lends the buffers in which stream data forwarded in parts
	// is gathered (relay.NewReadBuffers; nil: a pool of the session's
	// own). The edge shares its read buffers' pool.
	Batches *sync.Pool
}

// Budget is what queued stream data is counted against. Data the worker
// was granted credit for cannot be refused, only held and given back; a
// peer's message to be gathered whole is taken, and refused when it does
// not fit.
type Budget interface {
	Take(n int) bool
	Hold(n int)
	Give(n int)
}

// Reasons a session closes.
var (
	ErrNoHandshake   = errors.New("relay: expected a handshake first")
	ErrSlowClient    = errors.New("relay: client is not reading its messages")
	ErrWorkerLost    = errors.New("relay: worker lost")
	ErrWorkerClosed  = errors.New("relay: worker ended the session")
	ErrHandshakeTime = errors.New("relay: no handshake in time")
	ErrNoWorker      = errors.New("relay: no worker")
	// ErrInternal is what a session ends with when the relay's own code
	// failed (panicked) while serving it; only that session ends.
	ErrInternal = errors.New("relay: internal error")
)

// FailureKind names why a session ended, for the errors metric: "" when
// the client went away or was told to, else one of a fixed set.
func FailureKind(err error) string {
	for _, k := range []struct {
		err  error
		kind string
	}{
		{errClientGone, ""},
		{ErrNoHandshake, "no_handshake"},
		{ErrHandshakeTime, "handshake_timeout"},
		{ErrSlowClient, "slow_client"},
		{ErrWorkerLost, "worker_lost"},
		{routing.ErrNATSLost, "nats_lost"},
		{ErrWorkerClosed, "worker_closed"},
		{ErrNoWorker, "no_worker"},
		{ErrInternal, "panic"},
		{relay.ErrReadBudget, "read_budget"},
		{relay.ErrMessageTooLarge, "message_too_large"},
		{routing.ErrFramesLost, "frames_lost"},
		{routing.ErrBadFrame, "bad_frame"},
		{routing.ErrOverrun, "credit_overrun"},
	} {
		if errors.Is(err, k.err) {
			return k.kind
		}
	}
	if err == nil {
		return ""
	}
	return "client_error"
}

// Session is one client on an edge.
type Session struct {
	cfg  Config
	mux  *protomux.Mux
	ch   *relay.Channel
	ctx  context.Context
	stop context.CancelFunc

	link    *routing.Link // set once, by the handshake, while reading
	worker  string
	key     [32]byte    // the client's public key, from its handshake
	shaken  atomic.Bool // set once link, worker and key are
	hsTimer *time.Timer // fails a session whose handshake is late; nil after it
	done    func(error) // learns why the session ended

	// The tables are made on first use: most sessions hold no stream.
	mu       sync.Mutex
	byClient map[uint32]*stream  // the client's aliases
	byWorker map[uint32]*stream  // the worker's aliases
	connects map[uint32]struct{} // connects not yet opened, by the client's alias
	hsCancel context.CancelFunc  // ends the handshake's wait for a worker
	out      outQueue
	err      error // why the session ends, once it does
}

// stream is a stream's state on the edge.
type stream struct {
	worker uint32
	client uint32 // 0 until the client names it
	// raw is a non-custodial stream: the worker writes the client's
	// bytes to the peer as they come, and how they were cut into
	// buffers is not the peer's to see.
	raw    bool
	gate   *routing.Gate
	ledger routing.Ledger
	// gather is a message of the peer's arriving in parts
	// (routing.KindMessage), which the client must get as one buffer;
	// gatherLeft is what is still to come of it.
	gather     []byte
	gatherBuf  *[]byte // gather's buffer when lent by Config.Batches
	gatherLeft int
	// held is the parts of a message short enough to be held as they
	// came, each in its frame, until the message is whole (heldMax).
	held    []heldPart
	holding bool
	// waiting counts gathered messages queued and not yet written; while
	// one waits, the credit of the bytes gathered meanwhile is owed, and
	// granted once it is written. So a client that does not read holds
	// one gathered message and a window per stream, no more.
	waiting int
	owed    int
}

// New returns a session on cfg.Framed; Start serves it.
func New(cfg Config) *Session {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Tracer == nil {
		cfg.Tracer = tracenoop.NewTracerProvider().Tracer("")
	}
	if cfg.Batches == nil {
		cfg.Batches = relay.NewReadBuffers()
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &Session{cfg: cfg, ctx: ctx, stop: stop}
	_, joins := cfg.Framed.(gatherWriter)
	s.out = outQueue{write: s.writeOut, closed: s.closedOut, release: s.release, joins: joins, budget: cfg.Budget}
	return s
}

// Worker is the id of the worker holding the session and the client's
// public key, once the session has a worker.
func (s *Session) Worker() (string, [32]byte) {
	if !s.shaken.Load() {
		return "", [32]byte{}
	}
	return s.worker, s.key
}

// Parker is a transport that can give up its reader goroutine while no
// input waits, which is most of an idle client's life.
type Parker interface {
	// Park arranges for resume to run on a goroutine of its own once
	// input may wait or the transport closes, and reports true; false
	// means input already waits, or cannot be watched, and the caller
	// reads on.
	Park(resume func()) bool
}

// Start serves the client until its transport closes or the session
// fails; then done learns why. Between client messages on a Parker
// transport the session holds no goroutine.
func (s *Session) Start(done func(error)) {
	s.mux = protomux.New(s.cfg.Framed)
	ch, err := relay.OpenChannel(s.mux, relay.ChannelConfig{
		OnMessage: s.onClient,
		OnError:   s.Fail,
		OnClose:   func() { s.Fail(nil) },
		Ping:      true,
	})
	if err != nil {
		s.cfg.Framed.Close()
		s.cfg.OnClose()
		done(err)
		return
	}
	s.ch = ch
	s.hsTimer = time.AfterFunc(s.cfg.Limits.HandshakeTimeout, func() {
		if !s.shaken.Load() {
			s.Fail(ErrHandshakeTime)
		}
	})
	s.done = done
	go s.read()
}

// read takes the client's messages until none waits, then parks; the
// goroutines that run it follow one another, never two at once.
func (s *Session) read() {
	defer s.contain()
	parker, _ := s.cfg.Framed.(Parker)
	lender, _ := s.cfg.Framed.(relay.Lender)
	for {
		var err error
		if lender != nil {
			err = relay.ReceiveLent(s.mux, lender)
		} else {
			var frame []byte
			if frame, err = s.cfg.Framed.ReadMessage(); err == nil {
				err = s.mux.Receive(frame)
			}
		}
		if err != nil {
			if FailureKind(err) != "client_error" {
				// One of the relay's own refusals (a message past the
				// read budget or the read limit), which ending the mux
				// would record as the client going away.
				s.Fail(err)
			}
			s.finish(s.mux.End(err))
			return
		}
		if parker != nil && parker.Park(s.read) {
			return
		}
	}
}

// finish tears the session down once its transport failed with runErr.
func (s *Session) finish(runErr error) {
	if s.hsTimer != nil {
		s.hsTimer.Stop()
	}
	s.Fail(runErr)
	s.cfg.Framed.Close()
	s.ch.Close()
	if s.link != nil {
		s.link.Send(routing.KindBye, nil)
		s.link.Close()
	}
	s.mu.Lock()
	for _, st := range s.byWorker {
		st.gate.Close(context.Canceled)
		s.dropGatherLocked(st)
	}
	s.out.Drop()
	err := s.err
	s.mu.Unlock()
	s.cfg.OnClose()
	s.done(err)
}

// Fail ends the session with err (nil: the client went away). The
// transport is closed once what is queued for the client is written.
func (s *Session) Fail(err error) {
	s.mu.Lock()
	if s.err != nil || s.out.Closing() {
		s.mu.Unlock()
		return
	}
	if err == nil {
		err = errClientGone
	}
	s.err = err
	if s.hsCancel != nil {
		s.hsCancel()
	}
	s.mu.Unlock()
	if errors.Is(err, errClientGone) {
		s.cfg.Logger.Debug("session closing", "session", s.cfg.ID, "client", s.cfg.Remote, "reason", err)
	} else {
		s.cfg.Logger.Info("session closing", "session", s.cfg.ID, "client", s.cfg.Remote, "reason", err)
	}
	s.stop()
	s.cfg.Framed.Close()
}

var errClientGone = errors.New("relay: client went away")

// contain is deferred by every goroutine that runs this session's work,
// and by the handlers other goroutines call for it: a panic there is
// logged with its stack and ends this session alone, with ErrInternal,
// which the edge counts as kind "panic".
func (s *Session) contain() {
	if v := recover(); v != nil {
		s.cfg.Logger.Error("panic while serving a session; ending it", "session", s.cfg.ID, "client", s.cfg.Remote, "panic", v, "stack", string(debug.Stack()))
		s.Fail(fmt.Errorf("%w: %v", ErrInternal, v))
	}
}

// LinkLost ends the session because the way to its worker is gone (the
// worker died: ErrWorkerLost; NATS went away: routing.ErrNATSLost) or
// lost frames (routing.ErrFramesLost): every
// stream is destroyed with the reason, then the client is disconnected.
func (s *Session) LinkLost(reason error) {
	s.mu.Lock()
	for alias := range s.connects {
		s.enqueueLocked(&relay.Destroy{RemoteAlias: alias, Error: reason.Error()})
	}
	for _, st := range s.byWorker {
		s.enqueueLocked(&relay.Destroy{Paired: true, Alias: st.worker, Error: reason.Error()})
	}
	s.closeAfterQueueLocked(reason)
	s.mu.Unlock()
}

// handshakeWith opens the session at a worker for the client's handshake.
// The wait is not tied to s.ctx: a context derived from it would leave
// its parent a table of children for the session's life.
func (s *Session) handshakeWith(hs *relay.Handshake) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Limits.HandshakeTimeout)
	defer cancel()
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.hsCancel = cancel
	s.mu.Unlock()
	link, worker, err := s.cfg.Opener.Open(ctx, s.cfg.ID, hs, s.onWorker, s.onLinkFail)
	s.mu.Lock()
	s.hsCancel = nil
	s.mu.Unlock()
	if err != nil {
		s.Fail(fmt.Errorf("%w: %w", ErrNoWorker, err))
		return
	}
	s.link, s.worker, s.key = link, worker, hs.PublicKey
	s.shaken.Store(true)
	if l, ok := s.cfg.Framed.(readLimiter); ok {
		l.SetReadLimit(int64(s.cfg.Limits.MaxFrame))
	}
	s.hsTimer.Stop()
	s.hsTimer = nil
}

// put sets m[k] = v, making m on first use.
func put[K comparable, V any](m *map[K]V, k K, v V) {
	if *m == nil {
		*m = make(map[K]V)
	}
	(*m)[k] = v
}

// onClient handles one client message, on the transport's reader.
func (s *Session) onClient(m relay.Message) {
	if s.link == nil {
		hs, ok := m.(*relay.Handshake)
		if !ok {
			s.Fail(ErrNoHandshake)
			return
		}
		s.handshakeWith(hs)
		return
	}
	switch m := m.(type) {
	case *relay.Handshake:
		return // one per session
	case *relay.Connect:
		s.mu.Lock()
		put(&s.connects, m.Alias, struct{}{})
		s.mu.Unlock()
	case *relay.Connected:
		s.mu.Lock()
		if st := s.byWorker[m.RemoteAlias]; st != nil && st.client == 0 && s.byClient[m.Alias] == nil {
			st.client = m.Alias
			put(&s.byClient, m.Alias, st)
		}
		s.mu.Unlock()
	case *relay.Data:
		s.clientData(m)
		return
	case *relay.Destroy:
		s.mu.Lock()
		if st := s.byClient[m.Alias]; m.Paired && st != nil {
			st.gate.Close(context.Canceled)
		}
		s.mu.Unlock()
	}
	if op := tracedOp(m); op != "" {
		s.toWorkerTraced(op, m)
		return
	}
	s.toWorker(m)
}

func (s *Session) toWorker(m relay.Message) {
	if err := s.link.SendMessage(m); err != nil {
		s.Fail(err)
	}
}

// tracedOp names the operations traced from edge to worker.
func tracedOp(m relay.Message) string {
	switch m.(type) {
	case *relay.Connect:
		return "connect"
	case *relay.Listen:
		return "listen"
	case *relay.Lookup:
		return "lookup"
	case *relay.Announce:
		return "announce"
	case *relay.Unannounce:
		return "unannounce"
	}
	return ""
}

// toWorkerTraced sends m in a span of its own, whose context the worker's
// span for the operation continues.
func (s *Session) toWorkerTraced(op string, m relay.Message) {
	ctx, span := s.cfg.Tracer.Start(s.ctx, "edge "+op, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("dhtrelay.session", s.cfg.ID), attribute.String("dhtrelay.worker", s.worker)))
	err := s.link.SendMessageHeader(m, telemetry.Inject(ctx))
	telemetry.End(span, err)
	if err != nil {
		s.Fail(err)
	}
}

// clientData forwards a client's stream data as the worker's credit
// allows, holding the client's transport still while there is none. Each
// buffer stays a buffer of its own (a SecretStream message at the peer),
// and one sent in parts is announced as one (KindMessage);
// the buffers travel in batches of at most maxBatch encoded bytes, so a
// message of many tiny buffers costs the link no more frames than its bytes.
// A raw stream's buffers are only bytes to the peer: they are cut where a
// frame is full and never announced, so a non-custodial client's
// SecretStream, which writes each message's short header as a buffer of
// its own, costs the link full frames instead of two more a message.
func (s *Session) clientData(m *relay.Data) {
	s.mu.Lock()
	st := s.byClient[m.Alias]
	s.mu.Unlock()
	if st == nil {
		return // not open or gone: dropped, as the JS relay drops it
	}
	rest, left := m.Buffers, m.Buffers.Bytes()
	var (
		batch relay.Buffers
		cur   []byte // what is left of the buffer being sent
		room  int    // credit taken and not yet used
	)
	chunk, limit := routing.MaxChunk, maxBatch
	if st.raw {
		chunk, limit = routing.MaxRawChunk, maxRawBatch
	}
	var frame []byte // a lent buffer the batch is gathered in, behind room for the headers
	if rest.Size() > limit || left > routing.MaxChunk {
		// Sent in parts, gathered in a lent buffer: at upload rates a
		// buffer made for each would be most of the edge's garbage.
		bp := s.cfg.Batches.Get().(*[]byte)
		defer s.cfg.Batches.Put(bp)
		if cap(*bp) < routing.DataRoom+limit {
			*bp = make([]byte, 0, routing.DataRoom+limit)
		}
		frame = (*bp)[:routing.DataRoom]
		batch = relay.BuffersIn(frame[routing.DataRoom:])
	}
	flush := func() bool {
		if batch.Count() == 0 {
			return true
		}
		// The batch is published where it was gathered: limit bounds
		// it, so it never outgrew the buffer.
		err := s.link.SendBuffers(m.Alias, batch.Count(), frame[:routing.DataRoom+batch.Size()])
		batch = batch.Cleared()
		if err != nil {
			s.Fail(err)
		}
		return err == nil
	}
	for left > 0 {
		if room == 0 {
			if !flush() {
				return
			}
			want := min(left, routing.MaxChunk)
			if left <= chunk {
				want = left
			}
			n, err := s.take(st, want)
			if err != nil {
				return // the stream or the session ended
			}
			if len(cur) == 0 && n == left && rest.Size() <= limit {
				// The common case, all that is left sent as it came.
				if err := s.link.SendMessage(&relay.Data{Alias: m.Alias, Buffers: rest}); err != nil {
					s.Fail(err)
				}
				return
			}
			room = n
		}
		if len(cur) == 0 {
			cur, _ = rest.Next()
			if len(cur) > room && !st.raw {
				// It goes in parts: the worker learns that they are one
				// write, one SecretStream message to the peer.
				if !flush() {
					return
				}
				if err := s.link.Send(routing.KindMessage, routing.AppendMessage(nil, routing.Message{Alias: m.Alias, Bytes: uint64(len(cur))})); err != nil {
					s.Fail(err)
					return
				}
			}
			continue
		}
		k := min(len(cur), room)
		if over := batch.Size() + compact.UintSize(uint64(k)) + k - limit; over > 0 {
			if st.raw && k > over {
				// A raw stream's bytes may be cut anywhere: the frame
				// takes what fits, and the rest goes in the next.
				k -= over
			} else if !flush() {
				return
			}
		}
		batch = batch.Append(cur[:k])
		cur, room, left = cur[k:], room-k, left-k
	}
	flush()
}

// maxBatch is the most encoded buffers one data frame to the worker
// carries: a full chunk as one buffer, or as many smaller ones as fit.
var maxBatch = routing.MaxChunk + compact.UintSize(routing.MaxChunk)

// maxRawBatch is maxBatch for a frame of a raw stream's data, which is
// up to routing.MaxRawChunk when that is all that is left of the
// client's message, with room for two buffers' lengths: the end of one
// and the start of the next.
var maxRawBatch = routing.MaxRawChunk + 2*compact.UintSize(routing.MaxRawChunk)

// take waits for want bytes of credit, all of them, keeping the client
// counted as alive meanwhile: its pongs wait unread behind the data being
// held back. Taking what a grant left when it is less (a few KiB of a
// chunk) made a short frame, a short write into NATS, for every grant.
func (s *Session) take(st *stream, want int) (int, error) {
	// Most takes find credit: they need no timer.
	if n, err := st.gate.TryTake(want, want); n > 0 || err != nil {
		return n, err
	}
	for {
		ctx, cancel := context.WithTimeout(s.ctx, relay.PingInterval)
		n, err := st.gate.Take(ctx, want, want)
		cancel()
		if err == nil {
			return n, nil
		}
		if s.ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return 0, err
		}
		s.ch.Touch()
	}
}

// onLinkFail ends the session when frames from the worker were lost or
// undecodable: its streams are destroyed with the cause, which the client
// sees, and the worker is told on the way out.
func (s *Session) onLinkFail(err error) { s.LinkLost(err) }

// onWorker handles one frame from the worker, on the endpoint's goroutine;
// it never blocks. Its work under the session's lock runs in locked, so
// that a panic there reaches contain with the lock let go: held, it would
// stop the endpoint's goroutine, and every session on it, at contain's
// Fail.
func (s *Session) onWorker(f routing.Frame) {
	defer s.contain()
	switch f.Kind {
	case routing.KindCredit:
		c, err := routing.DecodeCredit(f.Payload)
		if err != nil {
			s.Fail(err)
			return
		}
		var st *stream
		s.locked(func() { st = s.byClient[c.Alias] })
		if st != nil {
			st.gate.Grant(c.Bytes)
		}
		return
	case routing.KindGone:
		g, err := routing.DecodeGone(f.Payload)
		if err != nil {
			s.Fail(err)
			return
		}
		s.locked(func() {
			if st := s.byWorker[g.Alias]; st != nil {
				delete(s.byWorker, g.Alias)
				if s.byClient[st.client] == st {
					delete(s.byClient, st.client)
				}
				st.gate.Close(context.Canceled)
				s.dropGatherLocked(st)
			}
		})
		return
	case routing.KindBye:
		reason := ErrWorkerClosed
		if len(f.Payload) > 0 {
			reason = fmt.Errorf("%w: %s", ErrWorkerClosed, f.Payload)
		}
		s.locked(func() { s.closeAfterQueueLocked(reason) })
		return
	case routing.KindMessage:
		m, err := routing.DecodeMessage(f.Payload)
		if err == nil {
			s.locked(func() { err = s.gatherLocked(m) })
		}
		if err != nil {
			s.Fail(err)
		}
		return
	}
	var (
		queued bool
		grant  routing.Credit
		err    error
	)
	s.locked(func() { queued, grant, err = s.queueLocked(f) })
	if !queued {
		f.Lease.Release() // nothing holds the frame's buffer
	}
	if grant.Bytes > 0 {
		s.link.Send(routing.KindCredit, routing.AppendCredit(nil, grant))
	}
	if err != nil {
		s.Fail(err)
	}
}

// locked runs fn with the session's lock held, and lets go of it however
// fn ends.
func (s *Session) locked(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn()
}

// gatherLocked begins gathering a message of the peer's that comes in
// parts.
func (s *Session) gatherLocked(m routing.Message) error {
	st := s.byWorker[m.Alias]
	switch {
	case st == nil:
		return nil // the stream is gone
	case st.gatherLeft > 0 || m.Bytes == 0 || m.Bytes > relay.MaxWholeBuffer:
		return fmt.Errorf("%w: a message of %d bytes announced", routing.ErrBadFrame, m.Bytes)
	}
	// A message no longer than the credit window holds no more than
	// credit lets any stream's data hold, and is held as such data is,
	// never refused. A longer one is gathered however slowly its parts
	// come, past what credit bounds: it is taken from the budget up front,
	// so that streams gathering at once cannot hold more than the edge has.
	n := int(m.Bytes)
	if n <= routing.Window {
		s.out.hold(n)
	} else if !s.out.take(n) {
		return fmt.Errorf("%w: no room for a peer's message of %d bytes", relay.ErrReadBudget, n)
	}
	st.gatherLeft = n
	st.holding = s.out.joins && n <= heldMax
	return nil
}

// heldMax is the longest message of the peer's whose parts are held in
// their frames until it is whole, and written from them as one buffer,
// instead of copied together. Their credit is granted once written, as
// any stream data's, so the worker must be able to send all of the
// message on the credit it has: the credit window less the most the
// edge may have passed on and not yet granted (routing's grant
// threshold, a quarter window), and more room than that.
const heldMax = routing.Window / 2

// gatherPartLocked adds a part of the message st gathers, and queues the
// message once whole; held says that the part stays in its frame, whose
// lease the message now holds. A part held is granted credit once the
// message is written, as any stream data; a part copied is granted at
// once (a message longer than the credit window would otherwise never be
// whole), unless a gathered message of the stream waits to be written.
// The message was counted against the edge's budget when announced.
func (s *Session) gatherPartLocked(st *stream, m *relay.Data, lease routing.Lease) (held bool, grant routing.Credit, err error) {
	p, _ := m.Buffers.Next()
	if m.Buffers.Count() != 0 || len(p) > st.gatherLeft {
		return false, routing.Credit{}, fmt.Errorf("%w: a part overruns the message", routing.ErrBadFrame)
	}
	if err := st.ledger.Receive(len(p)); err != nil {
		return false, routing.Credit{}, err
	}
	if st.holding {
		s.holdPartLocked(st, p, lease)
		return true, routing.Credit{}, nil
	}
	return false, s.copyPartLocked(st, p), nil
}

// holdPartLocked holds a part of a message short enough to stay in its
// frames, and queues the message once whole.
func (s *Session) holdPartLocked(st *stream, p []byte, lease routing.Lease) {
	st.held = append(st.held, heldPart{bytes: p, lease: lease})
	st.gatherLeft -= len(p)
	if st.gatherLeft > 0 {
		return
	}
	it := outItem{typ: relay.TypeData, data: st, parts: st.held}
	for _, part := range it.parts {
		it.n += len(part.bytes)
	}
	st.held, st.holding = nil, false
	// Held again as queued; stream data, bounded by credit, is never
	// refused.
	s.out.give(it.n)
	s.out.Push(it, s.cfg.Limits.ControlQueue)
}

// copyPartLocked copies a part of a message into the buffer it is
// gathered in, and queues the message once whole.
func (s *Session) copyPartLocked(st *stream, p []byte) routing.Credit {
	if st.gather == nil {
		// Most peers write 64 KiB at a time: over a transport that
		// cannot write a message from its parts, their messages fit a
		// lent buffer, and the garbage of one made for each is spared.
		if bp := s.cfg.Batches.Get().(*[]byte); cap(*bp) >= st.gatherLeft {
			st.gather, st.gatherBuf = (*bp)[:0], bp
		} else {
			s.cfg.Batches.Put(bp)
			st.gather = make([]byte, 0, st.gatherLeft)
		}
	}
	st.gather = append(st.gather, p...)
	st.gatherLeft -= len(p)
	grant := routing.Credit{Alias: st.worker}
	if st.waiting == 0 {
		grant.Bytes = st.ledger.Consume(len(p))
	} else {
		st.owed += len(p)
	}
	if st.gatherLeft > 0 {
		return grant
	}
	it := outItem{typ: relay.TypeData, data: st, n: len(st.gather), chunk: st.gather, credited: true, lent: st.gatherBuf}
	st.gather, st.gatherBuf = nil, nil
	st.waiting++
	// Held again as queued; stream data, bounded by credit, is never
	// refused.
	s.out.give(it.n)
	s.out.Push(it, s.cfg.Limits.ControlQueue)
	return grant
}

// dropGatherLocked lets go of what st gathered, and of what it took of
// the budget for the rest.
func (s *Session) dropGatherLocked(st *stream) {
	n := len(st.gather) + st.gatherLeft
	for _, part := range st.held {
		n += len(part.bytes)
		part.lease.Release()
	}
	s.out.give(n)
	if st.gatherBuf != nil {
		s.cfg.Batches.Put(st.gatherBuf)
	}
	st.gather, st.gatherBuf, st.gatherLeft, st.held, st.holding = nil, nil, 0, nil, false
}

// queueLocked queues a relay message from the worker for the client,
// keeping the session's stream tables up to date; queued tells whether
// the queue now reads from the frame's buffer, and err why the session
// must end.
func (s *Session) queueLocked(f routing.Frame) (queued bool, grant routing.Credit, err error) {
	t := relay.MessageType(f.Kind)
	item := outItem{typ: t, payload: f.Payload}
	switch t {
	case relay.TypeOpen, relay.TypeConnection, relay.TypeData, relay.TypeDestroy:
		m, err := f.Message()
		if err != nil {
			return false, grant, err
		}
		switch m := m.(type) {
		case *relay.Open:
			delete(s.connects, m.RemoteAlias)
			st := &stream{worker: m.Alias, client: m.RemoteAlias, raw: !m.Custodial, gate: routing.NewGate()}
			put(&s.byWorker, m.Alias, st)
			put(&s.byClient, m.RemoteAlias, st)
		case *relay.Connection:
			put(&s.byWorker, m.Alias, &stream{worker: m.Alias, raw: !m.Custodial, gate: routing.NewGate()})
		case *relay.Destroy:
			if !m.Paired {
				delete(s.connects, m.RemoteAlias)
			}
		case *relay.Data:
			st := s.byWorker[m.Alias]
			if st == nil {
				return false, grant, nil // the stream is gone: dropped
			}
			if st.gatherLeft > 0 {
				return s.gatherPartLocked(st, m, f.Lease)
			}
			n := m.Buffers.Bytes()
			if err := st.ledger.Receive(n); err != nil {
				return false, grant, err
			}
			item.data, item.n, item.lease, item.frame = st, n, f.Lease, f.Encoded
			if m.Buffers.Count() == 1 {
				item.chunk, _ = m.Buffers.Next()
			}
		}
	case relay.TypeNoiseSend, relay.TypeNoiseReceive, relay.TypeSignAnnounce, relay.TypeSignUnannounce, relay.TypeIncoming:
		item.urgent = true
	}
	if !s.out.Push(item, s.cfg.Limits.ControlQueue) {
		return false, grant, ErrSlowClient
	}
	// Queued: the payload is read from the frame's buffer until written
	// (stream data releases it then; other messages leave it to the
	// collector).
	return true, grant, nil
}

func (s *Session) enqueueLocked(m relay.Message) {
	s.out.Push(outItem{typ: m.Type(), payload: m.AppendPayload(nil)}, s.cfg.Limits.ControlQueue+len(s.byWorker)+len(s.connects))
}

// closeAfterQueueLocked closes the session once everything queued so far
// has been written.
func (s *Session) closeAfterQueueLocked(err error) {
	if s.err == nil && s.out.CloseAfter() {
		s.err = err
	}
}

// closedOut ends the session once the queue, closed, is written.
func (s *Session) closedOut() {
	s.stop()
	s.cfg.Framed.Close()
}
