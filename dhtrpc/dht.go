package dhtrpc

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/dhtrelay/dht-relay/udx"
)

// Timing and limits, as dht-rpc uses them.
const (
	requestTimeout  = time.Second // per try
	requestRetries  = 3           // tries after the first
	windowSlot      = 750 * time.Millisecond
	maxWindow       = 80 // sends per slot
	windowSlots     = 4  // at most 2 × maxWindow over the last slots
	tokenRotation   = 10 // slots per secret rotation (7.5 s)
	queryConcurrent = 10
	maxPingDelay    = 10 * time.Second
	// Table upkeep: every ticksPerMaintain slots (about 5 s, dht-rpc's
	// tick) up to pingsPerTick nodes not heard from for staleAfter are
	// pinged.
	ticksPerMaintain = 7
	pingsPerTick     = 3
	staleAfter       = time.Minute
	// An adaptive node turns persistent after stableTicks maintenance ticks
	// (about 20 minutes) of being reachable; after a wake-up (a tick gap
	// over sleepingGap) it waits moreStableTicks.
	stableTicks     = 240
	moreStableTicks = 3 * stableTicks
	sleepingGap     = 15 * time.Second
	// refreshTicks is how often (about 5 minutes) a node refreshes its
	// table with a lookup of itself; maxChecks bounds concurrent pings of
	// nodes reported down; maxDownHints bounds down hints sent per query.
	refreshTicks = 60
	maxChecks    = 10
	maxDownHints = 5
)

var (
	// ErrTimeout means a request got no response after all its tries.
	ErrTimeout = errors.New("dhtrpc: REQUEST_TIMEOUT: Request timed out")
	// ErrClosed means the node was closed.
	ErrClosed = errors.New("dhtrpc: node closed")
)

// RemoteError is a response's error code.
type RemoteError uint64

func (e RemoteError) Error() string { return fmt.Sprintf("dhtrpc: remote error %d", uint64(e)) }

// Config configures a DHT node.
type Config struct {
	// Bootstrap nodes to join through; none makes a first node.
	Bootstrap []netip.AddrPort
	// Host to bind; the zero value binds all IPv4 addresses.
	Host netip.Addr
	// Port for the server socket; 0 picks one.
	Port uint16
	// Persistent asks the node to become persistent as soon as its server
	// socket proves reachable, as dht-rpc's ephemeral: false.
	Persistent bool
	// Bootstrapper makes a first node of a network: persistent from the
	// start at Host and its server port, as dht-rpc's DHT.bootstrapper.
	// Host must then be a concrete IPv4 address.
	Bootstrapper bool
	// UDX shares a udx instance (and so its stream ids); nil makes one.
	UDX *udx.UDX
	// OnRequest handles requests that are not internal commands; it
	// reports whether it handled the request (else UNKNOWN_COMMAND).
	OnRequest func(*IncomingRequest) bool
}

// IncomingRequest is a request received by the node.
type IncomingRequest struct {
	*Request
	From   netip.AddrPort
	FromID *[IDSize]byte // valid only when it matches From
	d      *DHT
	socket *udx.Socket
}

// Reply answers with value, a fresh token and the closest nodes.
func (r *IncomingRequest) Reply(value []byte) {
	r.d.sendReply(r, 0, value, true, true, r.From)
}

// ReplyWith answers with value, choosing whether a token and the closest
// nodes go along (dht-rpc's reply options).
func (r *IncomingRequest) ReplyWith(value []byte, token, closerNodes bool) {
	r.d.sendReply(r, 0, value, token, closerNodes, r.From)
}

// ReplyTo answers with value to another address than the requester's, as
// a relay does when it hands a server's answer back to the client.
func (r *IncomingRequest) ReplyTo(value []byte, to netip.AddrPort, token, closerNodes bool) {
	r.d.sendReply(r, 0, value, token, closerNodes, to)
}

// Relay forwards the request to another node with a new value: the same
// transaction id, command, target and internal flag, no token, so that the
// answer can come back under the original id.
func (r *IncomingRequest) Relay(value []byte, to netip.AddrPort) {
	r.RelayVia(value, to, r.socket)
}

// RelayVia is Relay from another of the node's sockets: a holepunching
// server answers from the socket it punches with, so that the relay tells
// the client that socket's address.
func (r *IncomingRequest) RelayVia(value []byte, to netip.AddrPort, socket *udx.Socket) {
	d := r.d
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	fwd := Request{TID: r.TID, To: to, Internal: r.Internal, Command: r.Command, Target: r.Target, Value: value}
	if !d.ephemeral && socket == d.server {
		id := d.table.id
		fwd.ID = &id
	}
	d.mu.Unlock()
	socket.Send(fwd.AppendBinary(nil), to)
}

// Socket is the socket the request came in on.
func (r *IncomingRequest) Socket() *udx.Socket { return r.socket }

// Error answers with an error code.
func (r *IncomingRequest) Error(code uint64) {
	r.d.sendReply(r, code, nil, code == ErrInvalidToken, true, r.From)
}

type pending struct {
	req    Request
	to     netip.AddrPort
	socket *udx.Socket
	buf    []byte
	sent   int
	timer  *time.Timer // nil until first sent
	done   chan reply
	owner  *owner
	// Waiting for the congestion window, in its owner's queue.
	waiting    bool
	prev, next *pending
}

type reply struct {
	res    *Response
	from   netip.AddrPort
	fromID *[IDSize]byte
	socket *udx.Socket
	err    error
}

// DHT is a dht-rpc node.
type DHT struct {
	cfg    Config
	u      *udx.UDX
	server *udx.Socket
	client *udx.Socket

	mu         sync.Mutex
	table      table
	ephemeral  bool
	firewalled bool
	nat        natSampler
	tid        uint16
	inflight   map[uint16]*pending // every request held, sent or waiting
	queue      fairQueue
	window     congestion
	lastSend   time.Time
	lastReply  time.Time
	secrets    [2][IDSize]byte
	rotate     int
	ticks      int
	evicting   map[[IDSize]byte]bool

	bootstrapped bool
	refreshTicks int
	checks       int
	stableTicks  int
	lastTick     time.Time
	lastHost     netip.Addr
	closed       bool
	stats        Stats

	stop chan struct{}
	wg   sync.WaitGroup
}

// New binds the node's sockets and starts its clock; call Bootstrap to join.
func New(cfg Config) (*DHT, error) {
	d := &DHT{cfg: cfg, u: cfg.UDX, ephemeral: true, firewalled: true, inflight: map[uint16]*pending{}, evicting: map[[IDSize]byte]bool{}, stableTicks: stableTicks, refreshTicks: refreshTicks, lastTick: time.Now(), stop: make(chan struct{}), rotate: tokenRotation}
	if d.u == nil {
		d.u = udx.New()
	}
	rand.Read(d.table.id[:])
	rand.Read(d.secrets[0][:])
	rand.Read(d.secrets[1][:])
	var tid [2]byte
	rand.Read(tid[:])
	d.tid = binary.LittleEndian.Uint16(tid[:])
	// Handlers wait on mu until the node is set up.
	d.mu.Lock()
	defer d.mu.Unlock()
	var err error
	if d.server, err = d.bind(cfg.Port, nil); err != nil {
		return nil, fmt.Errorf("dhtrpc: server socket: %w", err)
	}
	if d.client, err = d.bind(0, nil); err != nil {
		d.server.Close()
		return nil, fmt.Errorf("dhtrpc: client socket: %w", err)
	}
	if cfg.Bootstrapper {
		if !cfg.Host.Is4() || cfg.Host.IsUnspecified() {
			d.server.Close()
			d.client.Close()
			return nil, fmt.Errorf("dhtrpc: a bootstrapper needs a concrete IPv4 host, not %v", cfg.Host)
		}
		pub := netip.AddrPortFrom(cfg.Host, d.server.LocalAddr().Port())
		d.firewalled, d.ephemeral = false, false
		d.nat.add(pub, pub)
		d.table.rehome(NodeID(pub))
	}
	d.wg.Add(1)
	go d.clock()
	return d, nil
}
