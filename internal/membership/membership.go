// Package membership tells each node of a relay cluster which other nodes
// are alive, by memberlist's SWIM gossip: every edge and worker joins with
// its node id as its name and its role as its metadata. Edges place
// sessions on the workers it reports alive, and end the sessions of a
// worker it reports dead; workers end the sessions of a dead edge. A node
// alive but cut off from the others' traffic (from NATS) says so by
// marking its metadata away ("worker/away"), and counts as lost until it
// clears the mark.
//
// A cluster whose gossip port is reachable from outside (workers on the
// host network) must set a key: without one, anyone who reaches the port
// can join as a worker and draw sessions to nowhere.
//
// Failure detection is tuned for a relay, not for memberlist's LAN
// defaults: a killed node is declared dead within about three seconds, so
// its clients' streams fail well within the five seconds the service
// promises, while a node slowed by load is first suspected and can refute.
package membership

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Role is what a node does in the cluster.
type Role string

// Roles.
const (
	Edge   Role = "edge"
	Worker Role = "worker"
)

// Failure detection: a member is probed every probeInterval and suspected
// when neither it nor the members asked to probe it on our behalf answer
// within probeTimeout; a suspect that does not refute is dead after
// suspicionMult probe intervals, at most suspicionMaxMult times that when
// no other member confirms the suspicion. Two seconds to refute: a node
// whose CPU a flood takes for a second (the all-in-one binary under a DHT
// flood on two cores) refuted in time but was declared dead at 1.2 s,
// ending every session it held.
const (
	probeInterval    = 400 * time.Millisecond
	probeTimeout     = 300 * time.Millisecond
	suspicionMult    = 5
	suspicionMaxMult = 2
	gossipInterval   = 100 * time.Millisecond
)

// rejoinInterval is how often a node that sees no member of the role it
// watches tries its join addresses again: a node started before its seeds,
// or cut off from them, finds the cluster once they are reachable.
const rejoinInterval = 2 * time.Second

// Config configures a node's membership.
type Config struct {
	// ID is the node's name in the cluster; it must be unique.
	ID   string
	Role Role
	// Bind is the gossip address, HOST:PORT (UDP and TCP); port 0 picks a
	// free one.
	Bind string
	// Advertise is the address other members reach this node at, when it
	// differs from Bind (NAT, containers); empty uses Bind's, or a private
	// address of this host when Bind is unspecified.
	Advertise string
	// Join lists members to join, HOST:PORT; host names resolve to every
	// address they have.
	Join []string
	// Key, when set (16, 24 or 32 bytes), encrypts and authenticates all
	// gossip with AES-GCM: only nodes that hold it can join or speak.
	Key []byte
	// Watch is the role whose members OnLost reports.
	Watch Role
	// OnLost runs, on a goroutine of its own, when a watched member is
	// declared dead or leaves.
	OnLost func(id string)
	Logger *slog.Logger
}

// Members is a node's view of the cluster.
type Members struct {
	cfg  Config
	meta *meta
	ml   *memberlist.Memberlist
	// views are the members' roles and away marks, copied as memberlist
	// reports them: a member's metadata changes under memberlist's lock,
	// so it is read only in its events.
	mu     sync.Mutex
	views  map[string]view
	stop   context.CancelFunc
	done   chan struct{}
	closed sync.Once
}

// ErrNoMembers means no member of the watched role became alive in time.
var ErrNoMembers = errors.New("membership: no live member")

// Start joins the cluster, keeps trying until a join reaches a join
// address, and rejoins whenever no watched member is alive, until Close.
func Start(cfg Config) (*Members, error) {
	host, portStr, err := net.SplitHostPort(cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("membership: bind %q: %w", cfg.Bind, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("membership: bind %q: bad port", cfg.Bind)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.ID
	mc.BindAddr, mc.BindPort = host, port
	if cfg.Advertise != "" {
		ahost, aport, err := net.SplitHostPort(cfg.Advertise)
		if err != nil {
			return nil, fmt.Errorf("membership: advertise %q: %w", cfg.Advertise, err)
		}
		mc.AdvertiseAddr = ahost
		if mc.AdvertisePort, err = strconv.Atoi(aport); err != nil {
			return nil, fmt.Errorf("membership: advertise %q: bad port", cfg.Advertise)
		}
	}
	mc.ProbeInterval, mc.ProbeTimeout = probeInterval, probeTimeout
	mc.SuspicionMult, mc.SuspicionMaxTimeoutMult = suspicionMult, suspicionMaxMult
	mc.GossipInterval = gossipInterval
	mc.SecretKey = cfg.Key
	m := &Members{cfg: cfg, meta: &meta{role: cfg.Role}, views: map[string]view{}, done: make(chan struct{})}
	mc.Delegate = m.meta
	mc.Events = &events{m: m}
	mc.Logger = newLogBridge(logger.With("gossip", cfg.ID))
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("membership: %w", err)
	}
	m.ml = ml
	ctx, stop := context.WithCancel(context.Background())
	m.stop = stop
	go m.keepJoined(ctx, logger)
	return m, nil
}

// keepJoined joins at once and again every rejoinInterval until a join
// reaches one of the join addresses, and after that whenever no watched
// member is alive. A member that joins this node first does not count as
// joined: it may know nothing of the cluster behind the join addresses,
// and under load it could come before this node's first join, which then
// never happened and left two clusters that never meet.
func (m *Members) keepJoined(ctx context.Context, logger *slog.Logger) {
	defer close(m.done)
	t := time.NewTicker(rejoinInterval)
	defer t.Stop()
	joined := false
	for {
		if len(m.cfg.Join) > 0 && (!joined || len(m.Live()) == 0) {
			n, err := m.ml.Join(m.cfg.Join)
			if err != nil {
				logger.Debug("gossip join failed; retrying", "join", m.cfg.Join, "err", err)
			}
			joined = joined || n > 0
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Addr is the address other members reach this node's gossip at.
func (m *Members) Addr() string {
	n := m.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// Live returns the ids of the watched role's members that are alive (not
// suspected) and not away, sorted.
func (m *Members) Live() []string {
	var ids []string
	members := m.ml.Members()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range members {
		if v, ok := m.views[n.Name]; ok && n.State == memberlist.StateAlive && v.role == m.cfg.Watch && !v.away && n.Name != m.cfg.ID {
			ids = append(ids, n.Name)
		}
	}
	slices.Sort(ids)
	return ids
}

// WaitLive waits until a watched member is alive.
func (m *Members) WaitLive(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for len(m.Live()) == 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrNoMembers, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// Close leaves the cluster, telling the other members within timeout so
// they need not wait to detect it, and stops gossiping.
func (m *Members) Close(timeout time.Duration) {
	m.closed.Do(func() {
		m.stop()
		<-m.done
		m.ml.Leave(timeout)
		m.ml.Shutdown()
	})
}

// updateTimeout bounds how long SetAway waits for its news to be sent.
const updateTimeout = time.Second

// SetAway marks this node away or back. The other role's nodes leave an
// away node out of Live and report it to their OnLost, as if it had died:
// a node cut off from NATS cannot reach them, so the sessions it held
// are theirs to end. It counts again once back.
func (m *Members) SetAway(away bool) error {
	if m.meta.away.Swap(away) == away {
		return nil
	}
	if err := m.ml.UpdateNode(updateTimeout); err != nil {
		m.meta.away.Store(!away) // so that the next call announces it again
		return fmt.Errorf("membership: announce away=%v: %w", away, err)
	}
	return nil
}

// awayMark follows the role in an away node's metadata.
const awayMark = "/away"

// view is what a member's metadata says.
type view struct {
	role Role
	away bool
}

func parseMeta(b []byte) view {
	r, away := strings.CutSuffix(string(b), awayMark)
	return view{Role(r), away}
}

// meta gives memberlist the node's role, marked if away, as its metadata.
type meta struct {
	role Role
	away atomic.Bool
}

func (d *meta) NodeMeta(limit int) []byte {
	if d.away.Load() {
		return []byte(string(d.role) + awayMark)
	}
	return []byte(d.role)
}
func (*meta) NotifyMsg([]byte)                           {}
func (*meta) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (*meta) LocalState(join bool) []byte                { return nil }
func (*meta) MergeRemoteState(buf []byte, join bool)     {}

// events reports watched members that die, leave or go away.
type events struct{ m *Members }

// memberlist calls its events with its state locked: they never block.

func (e *events) NotifyJoin(n *memberlist.Node) { e.see(n) }

// NotifyUpdate hears of metadata changes: a watched member marked away is
// lost. A member's metadata changes only as it goes away or comes back,
// so this reports each time it goes once.
func (e *events) NotifyUpdate(n *memberlist.Node) {
	if v := e.see(n); v.away {
		e.lost(v.role, n.Name)
	}
}

func (e *events) NotifyLeave(n *memberlist.Node) {
	v := parseMeta(n.Meta)
	e.m.mu.Lock()
	delete(e.m.views, n.Name)
	e.m.mu.Unlock()
	e.lost(v.role, n.Name)
}

// see records what n's metadata says.
func (e *events) see(n *memberlist.Node) view {
	v := parseMeta(n.Meta)
	e.m.mu.Lock()
	e.m.views[n.Name] = v
	e.m.mu.Unlock()
	return v
}

func (e *events) lost(role Role, id string) {
	if role == e.m.cfg.Watch && e.m.cfg.OnLost != nil {
		go e.m.cfg.OnLost(id)
	}
}

// newLogBridge turns memberlist's "[LEVEL] memberlist: ..." lines into
// slog records, so gossip logs obey the node's log level.
func newLogBridge(l *slog.Logger) *log.Logger {
	return log.New(bridge{l}, "", 0)
}

type bridge struct{ log *slog.Logger }

func (b bridge) Write(p []byte) (int, error) {
	line := bytes.TrimSpace(p)
	level := slog.LevelDebug
	switch {
	case bytes.Contains(line, []byte(net.ErrClosed.Error())):
		// memberlist's goroutines still send for a moment after it
		// shuts its sockets: expected, not an error.
	case bytes.HasPrefix(line, []byte("[ERR]")):
		level = slog.LevelError
	case bytes.HasPrefix(line, []byte("[WARN]")):
		level = slog.LevelWarn
	case bytes.HasPrefix(line, []byte("[INFO]")):
		level = slog.LevelInfo
	}
	b.log.Log(context.Background(), level, string(line))
	return len(p), nil
}
