// Package worker is a DHT worker: one HyperDHT node serving the relay
// sessions that edges open on it over NATS. For each session it holds what
// the JS relay's node proxy holds (streams, servers, queries) and runs the
// client's requests on the node; for a client that keeps its key it asks
// the client, through the edge, for each Noise message and signature.
//
// A session is opened by request on routing.OpenSubject and then speaks
// routing frames: relay protocol messages as the client would see them,
// credit for stream data both ways, and the end of streams and of the
// session.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/dhtrelay/dht-relay/hyperdht"
	"github.com/dhtrelay/dht-relay/internal/drain"
	"github.com/dhtrelay/dht-relay/internal/limits"
	"github.com/dhtrelay/dht-relay/internal/routing"
	"github.com/dhtrelay/dht-relay/internal/telemetry"
)

// Config configures a Worker.
type Config struct {
	// ID names the worker in NATS subjects (routing.ValidID).
	ID     string
	NATS   *nats.Conn
	Node   *hyperdht.Node
	Limits limits.Limits
	Logger *slog.Logger
	// Telemetry traces and counts the worker's work (nil: telemetry.Nop).
	Telemetry *telemetry.Telemetry
}

// Worker serves sessions on one HyperDHT node.
type Worker struct {
	cfg  Config
	log  *slog.Logger
	ep   *routing.Endpoint
	open *nats.Subscription

	stop context.CancelFunc // stops watchDHT

	mu       sync.Mutex
	closing  bool
	stalled  string // why the DHT node is stalled, or ""
	sessions map[string]*session
	keys     map[[32]byte]*server // servers by public key: one listener per key on the node

	held held
}

// ErrDuplicateSession means an edge asked to open a session id already open.
var ErrDuplicateSession = errors.New("worker: session already open")

// New checks cfg and returns a Worker; Start puts it to work.
func New(cfg Config) (*Worker, error) {
	if !routing.ValidID(cfg.ID) {
		return nil, fmt.Errorf("worker: invalid id %q", cfg.ID)
	}
	if cfg.NATS == nil || cfg.Node == nil {
		return nil, errors.New("worker: a NATS connection and a node are required")
	}
	if err := cfg.Limits.Validate(); err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.Telemetry == nil {
		cfg.Telemetry = telemetry.Nop()
	}
	// The series exist from the start, zero until something happens.
	cfg.Telemetry.Metrics.Session(telemetry.RoleWorker, 0)
	cfg.Telemetry.Metrics.Stream(0)
	w := &Worker{cfg: cfg, log: log.With("worker", cfg.ID), sessions: map[string]*session{}, keys: map[[32]byte]*server{}}
	w.held.udx = cfg.Node.DHT().UDX().Held
	return w, nil
}

// Start subscribes to the worker's subjects; it serves until Shutdown.
func (w *Worker) Start(ctx context.Context) error {
	ep, err := routing.NewEndpoint(w.cfg.NATS, routing.WorkerSessions(w.cfg.ID), func(err error) { w.natsLost(w.cfg.NATS, err) })
	if err != nil {
		return err
	}
	w.ep = ep
	if w.open, err = w.cfg.NATS.Subscribe(routing.OpenSubject(w.cfg.ID), w.onOpen); err != nil {
		ep.Close()
		return fmt.Errorf("worker: subscribe: %w", err)
	}
	if err := errors.Join(w.observe(w.cfg.Telemetry.Meter), w.observeHeld(w.cfg.Telemetry.Meter), w.observeUDX(w.cfg.Telemetry.Meter)); err != nil {
		w.open.Unsubscribe()
		ep.Close()
		return fmt.Errorf("worker: %w", err)
	}
	w.cfg.NATS.SetDisconnectErrHandler(w.natsInterrupted)
	wctx, stop := context.WithCancel(context.Background())
	w.stop = stop
	go w.watchDHT(wctx)
	return w.cfg.NATS.FlushTimeout(routing.FlushTimeout)
}

// Drain stops taking sessions and ends those open spread over d, as
// Shutdown ends them, so that their clients come back (to other workers)
// over d rather than at once.
func (w *Worker) Drain(ctx context.Context, d time.Duration) {
	w.mu.Lock()
	w.closing = true // no session opens from now on
	w.mu.Unlock()
	drain.Spread(ctx, d, w.sessionList(), func(s *session) { s.endSoon(ErrShuttingDown, true) })
}

// Shutdown ends every session: its streams are destroyed with a reason the
// client sees, its servers unannounced, and the edge told; then the worker
// stops taking sessions.
func (w *Worker) Shutdown(ctx context.Context) error {
	w.mu.Lock()
	w.closing = true // no session opens from now on
	w.mu.Unlock()
	if w.stop != nil {
		w.stop()
	}
	sessions := w.sessionList()
	if w.open != nil {
		w.open.Unsubscribe()
	}
	var wg sync.WaitGroup
	for _, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.end(ErrShuttingDown, true)
		}()
	}
	// Servers in their grace period belong to no session any more.
	w.mu.Lock()
	for _, srv := range w.keys {
		wg.Add(1)
		go func() { defer wg.Done(); srv.close() }()
	}
	w.mu.Unlock()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	w.cfg.NATS.Flush()
	if w.ep != nil {
		w.ep.Close()
	}
	return ctx.Err()
}

// sessionList returns the open sessions at this moment.
func (w *Worker) sessionList() []*session {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Collect(maps.Values(w.sessions))
}

// Sessions is the number of open sessions.
func (w *Worker) Sessions() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.sessions)
}

func (w *Worker) onOpen(m *nats.Msg) {
	_, span := w.cfg.Telemetry.Tracer.Start(telemetry.Extract(context.Background(), m.Header), "worker session.open", trace.WithSpanKind(trace.SpanKindServer))
	req, err := routing.DecodeOpenRequest(m.Data)
	defer func() { telemetry.End(span, err) }()
	if err != nil {
		m.Respond([]byte(err.Error()))
		return
	}
	span.SetAttributes(attribute.String("dhtrelay.session", req.Session), attribute.String("dhtrelay.edge", req.Edge))
	if req.Handshake.Custodial {
		if _, err = keyPair(req.Handshake.PublicKey, req.Handshake.SecretKey); err != nil {
			w.cfg.Telemetry.Metrics.Error("bad_key_pair")
			m.Respond([]byte(err.Error()))
			return
		}
	}
	over := w.overBudget() // before the worker's lock, as in connect
	w.mu.Lock()
	switch {
	case w.closing:
		err = ErrShuttingDown
	case w.sessions[req.Session] != nil:
		err = ErrDuplicateSession
	case !w.ep.Up():
		err = routing.ErrNATSLost
	case over:
		err = ErrWorkerBudget
		w.cfg.Telemetry.Metrics.Error("worker_budget")
	}
	if err != nil {
		w.mu.Unlock()
		m.Respond([]byte(err.Error()))
		return
	}
	s := newSession(w, req)
	w.sessions[req.Session] = s
	w.mu.Unlock()
	w.cfg.Telemetry.Metrics.Session(telemetry.RoleWorker, 1)
	s.link = w.ep.Attach(req.Session, routing.EdgeSessions(req.Edge)+"."+req.Session, s.handle, func(err error) { s.endSoon(err, true) })
	m.Respond(nil)
}

// EdgeLost ends the sessions of an edge that died or left, as if their
// clients had gone: their servers enter the grace period.
func (w *Worker) EdgeLost(edge string) {
	lost := slices.DeleteFunc(w.sessionList(), func(s *session) bool { return s.edge != edge })
	for _, s := range lost {
		w.log.Info("edge lost; ending its session", "edge", edge, "session", s.id)
		s.endSoon(ErrEdgeLost, false)
	}
}

// NATSUp reports whether the worker can both send and receive over NATS.
func (w *Worker) NATSUp() bool { return w.ep.Connected() }

// CutOff reports whether the worker lost NATS for longer than
// routing.ResyncWithin and has not got it back: it ended its sessions
// then (routing.Endpoint.CutOff).
func (w *Worker) CutOff() bool { return w.ep.CutOff() }

// natsInterrupted learns that the publishing connection to NATS failed;
// sessions wait for it and check their frames, as the edge's do
// (edge.natsInterrupted).
func (w *Worker) natsInterrupted(nc *nats.Conn, err error) {
	if nc.IsClosed() {
		return // our own shutdown
	}
	w.log.Warn("NATS disconnected; sessions wait for it and then check their frames", "err", err, "within", routing.ResyncWithin)
	w.ep.Interrupted(err)
}

// natsLost ends every session when NATS stays away past
// routing.ResyncWithin, as the edges end theirs (edge.natsLost); servers
// wait out their grace for their clients to come back.
func (w *Worker) natsLost(nc *nats.Conn, err error) {
	if nc.IsClosed() {
		return // our own shutdown
	}
	sessions := w.sessionList()
	w.log.Warn("NATS lost; ending every session", "err", err, "sessions", len(sessions))
	for _, s := range sessions {
		s.endSoon(routing.ErrNATSLost, false)
	}
}

func (w *Worker) forget(s *session) {
	w.mu.Lock()
	mine := w.sessions[s.id] == s
	if mine {
		delete(w.sessions, s.id)
	}
	w.mu.Unlock()
	if mine {
		w.cfg.Telemetry.Metrics.Session(telemetry.RoleWorker, -1)
	}
}

// claimKey reserves pk for srv: a node routes one server per key.
func (w *Worker) claimKey(pk [32]byte, srv *server) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.keys[pk] != nil {
		return false
	}
	w.keys[pk] = srv
	return true
}

func (w *Worker) releaseKey(pk [32]byte, srv *server) {
	w.mu.Lock()
	if w.keys[pk] == srv {
		delete(w.keys, pk)
	}
	w.mu.Unlock()
}

// Errors a session ends with, in words its client may see.
var (
	ErrShuttingDown = errors.New("relay: shutting down")
	ErrEdgeLost     = errors.New("relay: edge lost")
)
