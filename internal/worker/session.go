package worker

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/dhtrelay/dht-relay/dhtrpc"
	"github.com/dhtrelay/dht-relay/hyperdht"
	"github.com/dhtrelay/dht-relay/internal/routing"
	"github.com/dhtrelay/dht-relay/internal/telemetry"
	"github.com/dhtrelay/dht-relay/relay"
)

// connectTimeout bounds one connect, handshake and holepunch included.
const connectTimeout = 30 * time.Second

// ErrAnswerTimeout means the client did not answer the relay in time.
var ErrAnswerTimeout = errors.New("relay: client did not answer in time")

// session is one client's state on the worker. Its handle runs on the
// endpoint's goroutine and never blocks: work that waits (connects,
// listens, queries, pumps) runs on goroutines the session starts and its
// context stops.
type session struct {
	w         *Worker
	id        string
	edge      string
	custodial bool
	link      *routing.Link
	ctx       context.Context
	cancel    context.CancelFunc

	// bytes paces the session's relayed bytes (--session-byte-rate); nil
	// without that cap.
	bytes *rate.Limiter

	// ending is set by the first endSoon: one goroutine ends the session.
	ending atomic.Bool

	// The tables are made on first use: most sessions are idle.
	mu       sync.Mutex
	ended    bool
	nextID   uint32
	streams  map[uint32]*stream // by this side's alias
	byClient map[uint32]*stream // by the client's alias
	servers  map[uint32]*server // by the client's alias
	queries  map[uint32]struct{}
	dialing  int                           // connects waiting for their connection; they count as streams
	waits    map[uint32]chan relay.Message // answers the relay waits for, by the id it sent
}

func newSession(w *Worker, req routing.OpenRequest) *session {
	// The DHT node serves its sessions' requests in turn, each within
	// its share and at its pace.
	r := w.cfg.Limits.DHTRequestRate
	owner := dhtrpc.Owner{Key: req.Session, Rate: rate.NewLimiter(rate.Limit(r), 2*r)}
	ctx, cancel := context.WithCancel(dhtrpc.WithOwner(context.Background(), owner))
	s := &session{
		w: w, id: req.Session, edge: req.Edge, custodial: req.Handshake.Custodial,
		ctx: ctx, cancel: cancel,
	}
	if r := w.cfg.Limits.Caps.SessionByteRate; r > 0 {
		// A burst of at least one chunk, so that every chunk can pass.
		s.bytes = rate.NewLimiter(rate.Limit(r), max(r, routing.MaxChunk))
	}
	return s
}

// newID returns a fresh id for something this side names; ids are unique
// across kinds within a session, as the JS relay's are. s.mu is held.
func (s *session) newID() uint32 {
	s.nextID++
	if s.nextID == 0 {
		s.nextID = 1
	}
	return s.nextID
}

func (s *session) send(m relay.Message) { s.sent(s.link.SendMessage(m)) }

// sendData sends b[routing.DataRoom:] as stream alias's data.
func (s *session) sendData(alias uint32, b []byte) { s.sent(s.link.SendData(alias, b)) }

func (s *session) sendFrame(k routing.Kind, payload []byte) { s.sent(s.link.Send(k, payload)) }

// sent ends the session when a send to the edge failed, unless the link
// was already closed, which means the session is ending anyway.
func (s *session) sent(err error) {
	if err != nil && !errors.Is(err, routing.ErrLinkClosed) {
		s.endSoon(err, false)
	}
}

// handle takes one frame from the edge.
func (s *session) handle(f routing.Frame) {
	defer s.contain()
	switch f.Kind {
	case routing.KindCredit:
		c, err := routing.DecodeCredit(f.Payload)
		if err != nil {
			s.endSoon(err, false)
			return
		}
		s.mu.Lock()
		st := s.streams[c.Alias]
		s.mu.Unlock()
		if st != nil {
			st.gate.Grant(c.Bytes)
		}
		return
	case routing.KindMessage:
		m, err := routing.DecodeMessage(f.Payload)
		if err != nil {
			s.endSoon(err, false)
			return
		}
		if st := s.clientStream(m.Alias); st != nil {
			st.message(m.Bytes)
		}
		return
	case routing.KindBye:
		s.endSoon(nil, false)
		return
	case routing.KindGone:
		return
	}
	m, err := f.Message()
	if err != nil {
		s.endSoon(err, false)
		return
	}
	switch m := m.(type) {
	case *relay.Connect:
		s.connect(m, s.startOp(f, "connect"))
	case *relay.Connected:
		s.connected(m)
	case *relay.Data:
		s.data(m, f.Lease)
	case *relay.End:
		if st := s.clientStream(m.Alias); st != nil {
			st.end()
		}
	case *relay.Destroy:
		if st := s.clientStream(m.Alias); m.Paired && st != nil {
			st.destroy(nil, false)
		}
	case *relay.Listen:
		s.listen(m, s.startOp(f, "listen"))
	case *relay.Close:
		s.mu.Lock()
		srv := s.servers[m.Alias]
		s.mu.Unlock()
		if srv != nil {
			go srv.close()
		}
	case *relay.Lookup:
		s.query(m.ID, s.startOp(f, "lookup"), func(ctx context.Context, on func(hyperdht.LookupResult)) error {
			_, err := s.w.cfg.Node.Lookup(ctx, m.Topic, on)
			return err
		})
	case *relay.Announce:
		signer, err := s.signer(m.Custodial, m.PublicKey, m.SecretKey, m.ID)
		s.query(m.ID, s.startOp(f, "announce"), func(ctx context.Context, on func(hyperdht.LookupResult)) error {
			if err != nil {
				return err
			}
			return s.w.cfg.Node.Announce(ctx, m.Topic, signer, nil, on)
		})
	case *relay.Unannounce:
		signer, err := s.signer(m.Custodial, m.PublicKey, m.SecretKey, m.ID)
		s.query(m.ID, s.startOp(f, "unannounce"), func(ctx context.Context, on func(hyperdht.LookupResult)) error {
			if err != nil {
				return err
			}
			return s.w.cfg.Node.Unannounce(ctx, m.Topic, signer, on)
		})
	case *relay.Accept:
		s.answer(m.ID, m)
	case *relay.Deny:
		s.answer(m.ID, m)
	case *relay.Signature:
		s.answer(m.ID, m)
	case *relay.NoiseReply:
		s.answer(m.ID, m)
	}
}

func (s *session) clientStream(alias uint32) *stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byClient[alias]
}

// ask sends m, which carries id, and waits for the client's answer.
func (s *session) ask(id uint32, m relay.Message) (relay.Message, error) {
	ch := make(chan relay.Message, 1)
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return nil, ErrSessionEnded
	}
	put(&s.waits, id, ch)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waits, id)
		s.mu.Unlock()
	}()
	s.send(m)
	t := time.NewTimer(s.w.cfg.Limits.HandshakeTimeout)
	defer t.Stop()
	select {
	case a := <-ch:
		return a, nil
	case <-t.C:
		return nil, ErrAnswerTimeout
	case <-s.ctx.Done():
		return nil, ErrSessionEnded
	}
}

// answer hands the client's answer to whoever asked; answers nobody waits
// for are dropped, as the JS relay drops them.
func (s *session) answer(id uint32, m relay.Message) {
	s.mu.Lock()
	ch := s.waits[id]
	delete(s.waits, id)
	s.mu.Unlock()
	if ch != nil {
		ch <- m
	}
}

// Reasons operations are refused.
var (
	ErrTooManyQueries = errors.New("relay: too many queries")
	errDuplicate      = errors.New("relay: duplicate id")
)

// ErrInternal is what a session ends with when the worker's own code
// failed (panicked) while serving it; only that session ends.
var ErrInternal = errors.New("relay: internal error")

// contain is deferred by every goroutine that runs a session's work, and
// by handle: a panic there is logged with its stack, counted as kind
// "panic", and ends this session alone.
func (s *session) contain() {
	if v := recover(); v != nil {
		s.endSoon(s.w.recovered(v, s.id), true)
	}
}

// recovered logs and counts a panic caught while serving session id, and
// returns what the session ends with: the details stay in the log.
func (w *Worker) recovered(v any, session string) error {
	w.log.Error("panic while serving a session; ending it", "session", session, "panic", v, "stack", string(debug.Stack()))
	w.cfg.Telemetry.Metrics.Error("panic")
	return ErrInternal
}

// ErrSessionEnded is what waits in an ended session fail with.
var ErrSessionEnded = errors.New("relay: session ended")

// ErrBadKeyPair means a custodial client sent a secret key that is not its
// public key's.
var ErrBadKeyPair = errors.New("relay: secret key does not match public key")

// keyPair checks a custodial client's key pair: the public key must be the
// one its secret key's seed derives, and the secret key must end with it.
// A secret key that merely ends with the public key proves nothing: anyone
// can write one for a key they do not hold.
func keyPair(pk [32]byte, sk [64]byte) (*hyperdht.KeyPair, error) {
	derived := ed25519.NewKeyFromSeed(sk[:32])
	if !bytes.Equal(derived, sk[:]) || !bytes.Equal(derived[32:], pk[:]) {
		return nil, ErrBadKeyPair
	}
	return &hyperdht.KeyPair{Public: pk, Secret: sk}, nil
}

// signer signs for a query: with the key a custodial client sent, else by
// asking the client, whose signee is the query.
func (s *session) signer(custodial bool, pk [32]byte, sk [64]byte, signee uint32) (hyperdht.Signer, error) {
	if !custodial {
		return &remoteSigner{s: s, signee: signee, pk: pk}, nil
	}
	kp, err := keyPair(pk, sk)
	if err != nil {
		return nil, err
	}
	return hyperdht.LocalSigner(kp), nil
}

// startOp starts the worker's span for an operation f asks for,
// continuing the trace of the edge that forwarded it.
func (s *session) startOp(f routing.Frame, op string) trace.Span {
	_, span := s.w.cfg.Telemetry.Tracer.Start(telemetry.Extract(s.ctx, f.Header), "worker "+op,
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attribute.String("dhtrelay.session", s.id)))
	return span
}

// query runs a lookup, announce or unannounce as query id: each node's
// answer goes to the client as a result, then finished. span ends with
// it.
func (s *session) query(id uint32, span trace.Span, run func(context.Context, func(hyperdht.LookupResult)) error) {
	s.mu.Lock()
	_, dup := s.queries[id]
	full := len(s.queries) >= s.w.cfg.Limits.QueriesPerSession
	if !dup && !full {
		put(&s.queries, id, struct{}{})
	}
	s.mu.Unlock()
	if dup {
		telemetry.End(span, errDuplicate)
		return
	}
	if full {
		s.w.log.Info("query refused: limit", "session", s.id, "limit", s.w.cfg.Limits.QueriesPerSession)
		s.w.cfg.Telemetry.Metrics.Error("too_many_queries")
		telemetry.End(span, ErrTooManyQueries)
		s.send(&relay.Finished{ID: id})
		return
	}
	go func() {
		defer s.contain()
		results := 0
		err := run(s.ctx, func(r hyperdht.LookupResult) {
			results++
			data, _ := announcers(r).AppendBinary(nil)
			s.send(&relay.Result{ID: id, Data: data})
		})
		span.SetAttributes(attribute.Int("dhtrelay.results", results))
		telemetry.End(span, err)
		if err != nil && s.ctx.Err() == nil {
			kind := "query_failed"
			if errors.Is(err, dhtrpc.ErrBusy) {
				kind = "dht_busy"
			}
			s.w.log.Debug("query failed", "session", s.id, "kind", kind, "err", err)
			s.w.cfg.Telemetry.Metrics.Error(kind)
		}
		s.mu.Lock()
		delete(s.queries, id)
		s.mu.Unlock()
		s.send(&relay.Finished{ID: id})
	}()
}

func announcers(r hyperdht.LookupResult) *relay.Announcers {
	a := &relay.Announcers{From: relay.Node{Address: r.From}, To: relay.Node{Address: r.To}}
	if r.Token != nil {
		a.Token = *r.Token
	}
	if r.NodeID != nil {
		a.From.ID = r.NodeID[:]
	}
	for _, p := range r.Peers {
		a.Peers = append(a.Peers, relay.Peer{PublicKey: p.PublicKey, RelayAddresses: p.RelayAddresses})
	}
	return a
}

// end ends the session: pending waits fail, streams are destroyed (with
// err as the reason the client sees when tell is set), servers close and
// unannounce, and the edge is told unless it is the one that ended it.
// endSoon ends the session on a goroutine of its own, for callers that
// hold locks or run on a shared goroutine (the feed's, a stream's pump);
// of many calls, the first one's reason is the session's.
func (s *session) endSoon(err error, tell bool) {
	if s.ending.CompareAndSwap(false, true) {
		go s.end(err, tell)
	}
}

func (s *session) end(err error, tell bool) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended = true
	streams := make([]*stream, 0, len(s.streams))
	for _, st := range s.streams {
		streams = append(streams, st)
	}
	servers := make([]*server, 0, len(s.servers))
	for _, srv := range s.servers {
		servers = append(servers, srv)
	}
	s.mu.Unlock()
	if err != nil && !errors.Is(err, ErrShuttingDown) {
		s.w.log.Info("session ended", "session", s.id, "err", err)
	}
	for _, st := range streams {
		st.destroy(err, tell)
	}
	if tell {
		reason := ""
		if err != nil {
			reason = err.Error()
		}
		s.sendFrame(routing.KindBye, []byte(reason))
	}
	s.cancel()
	if errors.Is(err, ErrShuttingDown) {
		var wg sync.WaitGroup
		for _, srv := range servers {
			wg.Add(1)
			go func() { defer wg.Done(); srv.close() }()
		}
		wg.Wait()
	} else {
		// The client may be reconnecting: its servers stay announced
		// for Grace, for it to take over.
		for _, srv := range servers {
			srv.orphan()
		}
	}
	s.link.Close()
	s.w.forget(s)
}

// errorText is the reason a client sees for err: hyperdht's own errors
// keep their codes and messages.
func errorText(err error) string {
	if e, ok := errors.AsType[*hyperdht.Error](err); ok {
		return e.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return hyperdht.ErrPeerConnectionFailed.Error()
	}
	return err.Error()
}

// put sets m[k] = v, making m on first use.
func put[K comparable, V any](m *map[K]V, k K, v V) {
	if *m == nil {
		*m = make(map[K]V)
	}
	(*m)[k] = v
}
