// Package edge terminates relay clients: it accepts WebSocket and TCP
// connections, runs a session (package session) for each, and places each
// session on a live worker, chosen by rendezvous hashing of the client's
// public key over the workers cluster membership reports alive, over NATS. An edge keeps no state a client needs after it
// disconnects.
package edge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/dhtrelay/dht-relay/internal/admission"
	"github.com/dhtrelay/dht-relay/internal/affinity"
	"github.com/dhtrelay/dht-relay/internal/budget"
	"github.com/dhtrelay/dht-relay/internal/drain"
	"github.com/dhtrelay/dht-relay/internal/limits"
	"github.com/dhtrelay/dht-relay/internal/readwait"
	"github.com/dhtrelay/dht-relay/internal/routing"
	"github.com/dhtrelay/dht-relay/internal/session"
	"github.com/dhtrelay/dht-relay/internal/telemetry"
	"github.com/dhtrelay/dht-relay/noise"
	"github.com/dhtrelay/dht-relay/relay"
	"github.com/dhtrelay/dht-relay/secretstream"
)

// Config configures an Edge.
type Config struct {
	// ID names the edge in NATS subjects (routing.ValidID).
	ID     string
	NATS   *nats.Conn
	Limits limits.Limits
	Logger *slog.Logger
	// BehindProxy takes a WebSocket client's address from
	// X-Forwarded-For: the address ProxyHops from its right end, which
	// the proxies in front wrote, not what the client may have.
	BehindProxy bool
	ProxyHops   int
	// Allow lists the client addresses exempt from the per-address
	// limits.
	Allow []netip.Prefix
	// Origins lists the web origins (scheme://host[:port]) whose pages
	// may open sessions; "*" or none allows every origin. A request
	// without an Origin header does not come from a page and is allowed.
	Origins []string
	// Affinity, when set, keeps each key on the worker that holds it
	// across reconnects; nil places by hashing alone.
	Affinity *affinity.Placer
	// Telemetry traces and counts sessions (nil: telemetry.Nop).
	Telemetry *telemetry.Telemetry
	// Contact is who to tell of abuse, shown on the status page.
	Contact string
}

// idleReadBuffer is the WebSocket read buffer of a session while it reads
// (a parked one holds none): the library takes a lent buffer only above
// 256 bytes, and 288 is the allocator's size class above that. Frame
// payloads larger than it are read straight into their own buffers, so it
// costs data no copies.
const idleReadBuffer = 288

// Edge serves clients.
type Edge struct {
	cfg     Config
	log     *slog.Logger
	ep      *routing.Endpoint
	workers Workers
	stop    context.CancelFunc
	tcpKey  noise.KeyPair
	upgrade websocket.Upgrader
	// idle watches parked WebSocket sessions for input; nil where the
	// platform has no poller, and then each session keeps a reader.
	idle *readwait.Poller
	// reads lends the sessions' WebSocket reads their buffers.
	reads *sync.Pool
	admit *admission.Admission
	// budget bounds the bytes all sessions hold in messages being read.
	budget *budget.Budget

	mu       sync.Mutex
	closing  bool
	draining bool // new sessions are refused; those open end over the drain
	sessions map[string]*session.Session
}

// Errors clients' sessions can fail with at the edge.
var (
	ErrNoWorkers    = errors.New("relay: no live worker")
	ErrTooMany      = errors.New("relay: too many sessions on this edge")
	ErrShuttingDown = errors.New("relay: shutting down")
)

// New checks cfg and returns an Edge; Start connects it to the cluster.
func New(cfg Config) (*Edge, error) {
	if !routing.ValidID(cfg.ID) {
		return nil, fmt.Errorf("edge: invalid id %q", cfg.ID)
	}
	if cfg.NATS == nil {
		return nil, errors.New("edge: a NATS connection is required")
	}
	if err := cfg.Limits.Validate(); err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.Telemetry == nil {
		cfg.Telemetry = telemetry.Nop()
	}
	kp, err := noise.GenerateKeyPair(rand.Reader)
	if err != nil {
		return nil, err
	}
	e := &Edge{cfg: cfg, log: log.With("edge", cfg.ID), tcpKey: kp, reads: relay.NewReadBuffers(), sessions: map[string]*session.Session{}}
	l := cfg.Limits
	e.admit = admission.New(admission.Config{PerAddress: l.SessionsPerAddress, PerSubnet: l.SessionsPerSubnet,
		Rate: float64(l.SessionRate), Burst: l.SessionBurst, Allow: cfg.Allow})
	e.budget = budget.New(int64(l.ReadBudget))
	// Without a poller (ErrUnsupported: not Linux) idle stays nil.
	if e.idle, err = readwait.New(); err != nil && !errors.Is(err, readwait.ErrUnsupported) {
		return nil, fmt.Errorf("edge: %w", err)
	}
	cfg.Telemetry.Metrics.Session(telemetry.RoleEdge, 0) // the series exists from the start
	e.upgrade = websocket.Upgrader{
		// No read buffer size: the library then reads through the one
		// readBufferHijacker lends it (idleReadBuffer bytes, given back
		// while the session is parked; a large frame's payload is read
		// past it).
		// A pool lends write buffers only while a write is under way.
		WriteBufferPool: &sync.Pool{},
		// A public relay serves pages from any origin (the protocol
		// carries no ambient authority a foreign page could abuse); a
		// private one may take only its own web app's.
		CheckOrigin: e.originAllowed,
	}
	return e, nil
}

// originAllowed checks a WebSocket upgrade's Origin against cfg.Origins.
func (e *Edge) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || len(e.cfg.Origins) == 0 {
		return true
	}
	for _, o := range e.cfg.Origins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	e.cfg.Telemetry.Metrics.Error("origin")
	e.log.Debug("session refused: origin not allowed", "origin", origin, "client", e.clientAddr(r))
	return false
}

// Workers is the edge's view of the live workers (membership.Members).
// The edge also needs to hear of each worker's loss: see WorkerLost.
type Workers interface {
	// Live returns the live workers' ids, sorted.
	Live() []string
	// WaitLive waits until a worker is live.
	WaitLive(ctx context.Context) error
}

// Start subscribes to the edge's subjects and starts placing sessions on
// workers.
func (e *Edge) Start(ctx context.Context, workers Workers) error {
	ep, err := routing.NewEndpoint(e.cfg.NATS, routing.EdgeSessions(e.cfg.ID), func(err error) { e.natsLost(e.cfg.NATS, err) })
	if err != nil {
		return err
	}
	e.ep = ep
	e.workers = workers
	if err := e.observe(e.cfg.Telemetry.Meter); err != nil {
		ep.Close()
		return err
	}
	e.cfg.NATS.SetDisconnectErrHandler(e.natsInterrupted)
	pctx, stop := context.WithCancel(context.Background())
	e.stop = stop
	if e.cfg.Affinity != nil {
		go e.refreshAffinity(pctx)
	}
	fctx, cancel := context.WithTimeout(ctx, routing.FlushTimeout)
	defer cancel()
	return e.cfg.NATS.FlushWithContext(fctx)
}

// observe registers the edge's gauges: live workers (which readiness also
// follows) and, with Redis, placements that fell back to hashing.
func (e *Edge) observe(m metric.Meter) error {
	_, err := m.Int64ObservableGauge("dhtrelay.read.budget", metric.WithUnit("By"), metric.WithDescription("Bytes the edge holds in client messages being read, against --read-budget."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(e.budget.Used())
			return nil
		}))
	if err != nil {
		return err
	}
	_, err = m.Int64ObservableGauge("dhtrelay.workers.live", metric.WithDescription("Workers the edge sees alive."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(int64(e.Workers()))
			return nil
		}))
	if err != nil || e.cfg.Affinity == nil {
		return err
	}
	_, err = m.Int64ObservableCounter("dhtrelay.affinity.fallbacks", metric.WithDescription("Placements made by hashing alone because Redis failed."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(int64(e.cfg.Affinity.Fallbacks()))
			return nil
		}))
	return err
}

// Workers is the number of live workers the edge knows.
func (e *Edge) Workers() int { return len(e.workers.Live()) }

// sessionList returns the client sessions at this moment.
func (e *Edge) sessionList() []*session.Session {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Collect(maps.Values(e.sessions))
}

// Sessions is the number of client sessions.
func (e *Edge) Sessions() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.sessions)
}

// Open places a session on a worker (session.Opener).
func (e *Edge) Open(ctx context.Context, id string, hs *relay.Handshake, handle func(routing.Frame), fail func(error)) (_ *routing.Link, worker string, err error) {
	ctx, span := e.cfg.Telemetry.Tracer.Start(ctx, "edge session.open", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("dhtrelay.session", id), attribute.Bool("dhtrelay.custodial", hs.Custodial)))
	defer func() {
		span.SetAttributes(attribute.String("dhtrelay.worker", worker))
		telemetry.End(span, err)
	}()
	// Right after a start or a worker's loss there may be none yet: wait
	// within the handshake's time.
	if e.workers.WaitLive(ctx) != nil {
		return nil, "", ErrNoWorkers
	}
	var w string
	if e.cfg.Affinity != nil {
		w = e.cfg.Affinity.Place(ctx, hs.PublicKey[:], e.workers.Live())
	} else {
		w = routing.Pick(hs.PublicKey[:], e.workers.Live())
	}
	if w == "" {
		return nil, "", ErrNoWorkers
	}
	if !e.ep.Up() {
		return nil, "", routing.ErrNATSLost
	}
	link := e.ep.Attach(id, routing.WorkerSessions(w)+"."+id, handle, fail)
	req := routing.OpenRequest{Session: id, Edge: e.cfg.ID, Handshake: *hs}
	reply, err := e.cfg.NATS.RequestMsgWithContext(ctx, &nats.Msg{Subject: routing.OpenSubject(w), Data: req.Encode(), Header: telemetry.Inject(ctx)})
	if err == nil && len(reply.Data) > 0 {
		err = errors.New(string(reply.Data))
	}
	if err != nil {
		link.Close()
		return nil, "", fmt.Errorf("worker %s: %w", w, err)
	}
	return link, w, nil
}

// refreshAffinity keeps the placement of every connected client's key
// alive, every affinity.TTL/3, until ctx ends.
func (e *Edge) refreshAffinity(ctx context.Context) {
	t := time.NewTicker(affinity.TTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, s := range e.sessionList() {
			if w, key := s.Worker(); w != "" {
				e.cfg.Affinity.Refresh(ctx, key[:], w)
			}
		}
	}
}

// WorkerLost fails the sessions placed on a worker that died or left:
// their streams end with an error and their clients may reconnect.
func (e *Edge) WorkerLost(worker string) {
	lost := slices.DeleteFunc(e.sessionList(), func(s *session.Session) bool {
		w, _ := s.Worker()
		return w != worker
	})
	e.log.Warn("worker lost", "worker", worker, "sessions", len(lost))
	for _, s := range lost {
		s.LinkLost(session.ErrWorkerLost)
	}
}

// NATSUp reports whether the edge can both send and receive over NATS.
func (e *Edge) NATSUp() bool { return e.ep.Connected() }

// CutOff reports whether the edge lost NATS for longer than
// routing.ResyncWithin and has not got it back: it ended its sessions
// then (routing.Endpoint.CutOff).
func (e *Edge) CutOff() bool { return e.ep.CutOff() }

// natsInterrupted learns that the publishing connection to NATS failed.
// Sessions wait for it to come back (to another server of a cluster, or
// the same one restarted) and then check that no frame was lost either
// way (routing.Endpoint.Interrupted); a session that lost one ends.
func (e *Edge) natsInterrupted(nc *nats.Conn, err error) {
	if nc.IsClosed() {
		return // our own shutdown
	}
	e.log.Warn("NATS disconnected; sessions wait for it and then check their frames", "err", err, "within", routing.ResyncWithin)
	e.ep.Interrupted(err)
}

// natsLost ends every session when NATS stays away past
// routing.ResyncWithin. Clients reconnect once NATS is back; their servers
// wait on the workers.
func (e *Edge) natsLost(nc *nats.Conn, err error) {
	if nc.IsClosed() {
		return // our own shutdown
	}
	sessions := e.sessionList()
	e.log.Warn("NATS lost; ending every session", "err", err, "sessions", len(sessions))
	for _, s := range sessions {
		s.LinkLost(routing.ErrNATSLost)
	}
}

// ErrBusy means the edge refused a session because its read budget is
// nearly spent.
var ErrBusy = errors.New("relay: edge busy")

// admitted takes a session for the client at remote ("host:port" or a
// bare address), or counts and, once a minute per address, logs why not.
func (e *Edge) admitted(remote string) (release func(), err error) {
	var addr netip.Addr
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		addr = ap.Addr()
	} else {
		addr, _ = netip.ParseAddr(remote)
	}
	if e.stopping() {
		e.cfg.Telemetry.Metrics.Error("draining")
		return nil, ErrShuttingDown
	}
	if e.budget.Tight() {
		e.cfg.Telemetry.Metrics.Error("read_budget_tight")
		return nil, ErrBusy
	}
	release, log, err := e.admit.Admit(addr, time.Now())
	if err != nil {
		e.cfg.Telemetry.Metrics.Error(admission.Kind(err))
		if log {
			e.log.Warn("session refused", "reason", err, "client", remote)
		}
		return nil, err
	}
	return release, nil
}

// serve starts a client's session on t; release gives its place back to
// the client's address once the session is over.
func (e *Edge) serve(t session.Transport, remote string, release func()) {
	id := newSessionID()
	e.mu.Lock()
	if e.closing || len(e.sessions) >= e.cfg.Limits.SessionsPerEdge {
		full := !e.closing
		e.mu.Unlock()
		release()
		if full {
			e.cfg.Telemetry.Metrics.Error("edge_sessions")
			e.log.Warn("session refused", "reason", ErrTooMany, "client", remote)
		}
		t.Close()
		return
	}
	metrics := e.cfg.Telemetry.Metrics
	s := session.New(session.Config{
		ID: id, Framed: t, Opener: e, Limits: &e.cfg.Limits, Remote: remote, Logger: e.log, Tracer: e.cfg.Telemetry.Tracer, Budget: e.budget, Batches: e.reads,
		OnClose: func() {
			e.mu.Lock()
			delete(e.sessions, id)
			e.mu.Unlock()
			release()
			metrics.Session(telemetry.RoleEdge, -1)
		},
	})
	e.sessions[id] = s
	e.mu.Unlock()
	metrics.Session(telemetry.RoleEdge, 1)
	s.Start(func(err error) {
		e.mu.Lock()
		closing := e.closing
		e.mu.Unlock()
		if kind := session.FailureKind(err); kind != "" && !closing {
			metrics.Error(kind)
		}
	})
}

func newSessionID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ServeHTTP upgrades a request to the WebSocket transport and serves it.
func (e *Edge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		e.status(w, r)
		return
	}
	remote := e.clientAddr(r)
	release, err := e.admitted(remote)
	if errors.Is(err, ErrBusy) || errors.Is(err, ErrShuttingDown) {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusTooManyRequests)
		return
	}
	h := &readBufferHijacker{ResponseWriter: w}
	c, err := e.upgrade.Upgrade(h, r, nil)
	if err != nil {
		release()
		return // the upgrader has answered
	}
	f := relay.NewServerWebSocketFramed(c, int64(e.cfg.Limits.MaxFrame), e.cfg.Limits.WriteTimeout, e.reads)
	f.SetReadBudget(e.budget)
	f.SetReadLimit(session.HandshakeFrame)
	var t session.Transport = f
	if p := newParkingWS(c, h.br, f, e.idle); p != nil {
		t = p
	}
	// The session reads on goroutines of its own, so this handler
	// returns, and net/http lets go of the request, response and buffers
	// (some 10 KB) that a hijacked connection no longer uses.
	e.serve(t, remote, release)
}

// clientAddr is the client's address: the connection's peer, or behind
// proxies the address the nearest ProxyHops of them wrote into
// X-Forwarded-For, counted from its right end. What the client wrote
// itself lies further left and is never taken.
func (e *Edge) clientAddr(r *http.Request) string {
	if !e.cfg.BehindProxy {
		return r.RemoteAddr
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		for _, a := range strings.Split(h, ",") {
			hops = append(hops, strings.TrimSpace(a))
		}
	}
	if len(hops) < e.cfg.ProxyHops {
		return r.RemoteAddr // not through as many proxies as configured
	}
	return hops[len(hops)-e.cfg.ProxyHops]
}

// ServeTCP accepts TCP clients on ln until it is closed: each runs the
// SecretStream handshake (as responder) and then the relay channel.
func (e *Edge) ServeTCP(ln net.Listener) error {
	delay := time.Duration(0)
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors or a connection aborted before it
			// was taken: the listener itself is fine, so wait and take
			// the next one, as net/http does, instead of stopping for good.
			delay = min(max(2*delay, acceptRetryMin), acceptRetryMax)
			e.cfg.Telemetry.Metrics.Error("accept_failed")
			e.log.Warn("TCP accept failed; retrying", "err", err, "in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		release, err := e.admitted(c.RemoteAddr().String())
		if err != nil {
			c.Close()
			continue
		}
		go e.serveTCP(c, release)
	}
}

// The TCP listener's waits after a failed accept, doubling from the first
// to the last.
const (
	acceptRetryMin = 5 * time.Millisecond
	acceptRetryMax = time.Second
)

func (e *Edge) serveTCP(c net.Conn, release func()) {
	c.SetDeadline(time.Now().Add(e.cfg.Limits.HandshakeTimeout))
	ss, err := secretstream.New(c, false, secretstream.Config{KeyPair: e.tcpKey, MaxMessageSize: session.HandshakeFrame})
	if err != nil {
		release()
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	e.serve(&tcpTransport{Stream: ss, c: c, timeout: e.cfg.Limits.WriteTimeout}, c.RemoteAddr().String(), release)
}

// SetReadLimit sets the largest message read from now on.
func (t *tcpTransport) SetReadLimit(n int64) { t.Stream.SetMaxMessageSize(int(n)) }

// tcpTransport bounds each write, as the WebSocket transport does.
type tcpTransport struct {
	*secretstream.Stream
	c       net.Conn
	timeout time.Duration
}

func (t *tcpTransport) WriteMessage(p []byte) error {
	t.c.SetWriteDeadline(time.Now().Add(t.timeout))
	return t.Stream.WriteMessage(p)
}

// status answers a request that is not a WebSocket upgrade: at / a short
// page saying what this is and whether it takes sessions (503 when not,
// so that a load balancer's check can use it), elsewhere 404.
func (e *Edge) status(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	state, code := "accepting sessions", http.StatusOK
	switch {
	case e.stopping():
		state, code = "draining: not accepting sessions", http.StatusServiceUnavailable
	case e.Workers() == 0:
		state, code = "no live worker: not accepting sessions", http.StatusServiceUnavailable
	case e.budget.Tight():
		state, code = "busy: not accepting sessions", http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintf(w, "dht-relay: a way into the Hyperswarm DHT for clients that speak WebSocket.\nConnect with @hyperswarm/dht-relay to this URL.\n\n%s\n", state)
	if e.cfg.Contact != "" {
		fmt.Fprintf(w, "abuse: %s\n", e.cfg.Contact)
	}
}

// stopping reports whether the edge drains or shuts down: it takes no
// new session.
func (e *Edge) stopping() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.draining || e.closing
}

// Drain refuses new sessions (kind draining, 503 at the upgrade) and ends
// those open spread over d, so that their clients reconnect elsewhere over
// d rather than at once. Shutdown ends any left.
func (e *Edge) Drain(ctx context.Context, d time.Duration) {
	e.mu.Lock()
	e.draining = true
	e.mu.Unlock()
	drain.Spread(ctx, d, e.sessionList(), func(s *session.Session) { s.Fail(ErrShuttingDown) })
}

// Shutdown stops taking clients and closes every session.
func (e *Edge) Shutdown(ctx context.Context) {
	e.mu.Lock()
	e.closing = true // no session is added from now on
	e.mu.Unlock()
	for _, s := range e.sessionList() {
		s.Fail(ErrShuttingDown)
	}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for e.Sessions() > 0 && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	if e.stop != nil {
		e.stop()
	}
	if e.ep != nil {
		e.ep.Close()
	}
	if e.idle != nil {
		e.idle.Close()
	}
}
