package routing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/dhtrelay/dht-relay/compact"
	"github.com/dhtrelay/dht-relay/internal/natsfeed"
	"github.com/dhtrelay/dht-relay/relay"
)

// ErrNATSLost means a node lost its NATS connection and did not get it
// back within ResyncWithin, so the sessions it carried end.
var ErrNATSLost = errors.New("relay: connection between edge and worker lost")

// ResyncWithin is how long sessions wait for NATS to come back after their
// node lost it: their clients' traffic stalls meanwhile, and a client
// whose relay is gone for longer is better off reconnecting (to another
// edge, if this one stays cut off).
const ResyncWithin = 10 * time.Second

// resyncPoll is how often a resync looks whether NATS is back, and
// whether its asks were answered.
const resyncPoll = 20 * time.Millisecond

// askAgain is how long a resync waits for a link's answer before asking
// again: on a NATS cluster an answer is lost when it is published before
// the asking endpoint's new subscription has reached the answering
// endpoint's server.
const askAgain = 250 * time.Millisecond

// trailAfter is how often an endpoint looks for links that sent frames
// and then fell quiet: each gets a sync, so that a gap after its last
// frame shows even when no connection was interrupted (a route between
// NATS servers that dropped messages, say), within two looks.
const trailAfter = 2 * time.Second

// ErrFramesLost means a session's frames arrived with a gap: NATS dropped
// some.
var ErrFramesLost = errors.New("routing: frames lost between edge and worker")

// Endpoint is an edge's or a worker's end of all its sessions: one NATS
// subscription on prefix.*, through a feed of its own (natsfeed), whose
// messages it hands to each session's Link, in order, on the feed's
// goroutine. Handlers must not block.
type Endpoint struct {
	nc   *nats.Conn
	feed *natsfeed.Feed

	bufs sync.Pool // *[]byte: frames being encoded, so idle links hold no buffer
	lost func(error)

	ctx    context.Context // done once closed: stops a resync
	cancel context.CancelFunc

	// cutOff is set when NATS stayed away past ResyncWithin, until both
	// connections are back (CutOff).
	cutOff atomic.Bool

	mu        sync.Mutex
	links     map[string]*Link
	losses    uint64 // connection losses seen, by Interrupted
	resyncing bool   // a resync goroutine runs
}

// NewEndpoint subscribes to prefix.* on the server nc is connected to.
// lost learns that NATS was lost and did not come back within
// ResyncWithin: the sessions cannot go on.
func NewEndpoint(nc *nats.Conn, prefix string, lost func(error)) (*Endpoint, error) {
	ctx, cancel := context.WithCancel(context.Background())
	e := &Endpoint{nc: nc, links: map[string]*Link{}, lost: lost, ctx: ctx, cancel: cancel}
	feed, err := natsfeed.Start(natsfeed.Config{NATS: nc, Subject: prefix + ".*", Handle: e.dispatch, Lost: e.Interrupted})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("routing: subscribe %s: %w", prefix, err)
	}
	e.feed = feed
	go e.trail() // stops on Close
	return e, nil
}

// trail sends a sync on each link that sent frames and then sent nothing
// for a whole trailAfter, once for each such pause.
func (e *Endpoint) trail() {
	t := time.NewTicker(trailAfter)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		for _, l := range e.linkList() {
			l.trail()
		}
	}
}

// Interrupted learns that a connection to NATS failed (the feed's, or the
// publishing connection's, which the endpoint's owner watches): frames may
// have been lost. Once both connections are back, every link sends a
// sync and asks for one back, so that a gap either way shows and fails
// its session; sessions that lost nothing go on. If NATS is not back
// within ResyncWithin, lost is called instead.
func (e *Endpoint) Interrupted(err error) {
	e.mu.Lock()
	e.losses++
	start := !e.resyncing
	e.resyncing = true
	e.mu.Unlock()
	if start {
		go e.resync(err) // stops once synced, timed out or closed
	}
}

func (e *Endpoint) resync(cause error) {
	t := time.NewTicker(resyncPoll)
	defer t.Stop()
	for {
		deadline := time.Now().Add(ResyncWithin)
		for !e.Connected() {
			if time.Now().After(deadline) {
				e.mu.Lock()
				e.resyncing = false
				e.mu.Unlock()
				e.cutOff.Store(true)
				e.lost(fmt.Errorf("%w: not back within %v: %w", ErrNATSLost, ResyncWithin, cause))
				return
			}
			select {
			case <-e.ctx.Done():
				return
			case <-t.C:
			}
		}
		e.mu.Lock()
		seen := e.losses
		e.mu.Unlock()
		links := e.linkList()
		for _, l := range links {
			l.unsynced.Store(true)
		}
		if !e.syncAll(links, t.C) {
			return
		}
		e.mu.Lock()
		again := e.losses != seen // lost again while syncing: sync again
		e.resyncing = again
		e.mu.Unlock()
		if !again {
			return
		}
	}
}

// syncAll asks each link for a sync, again every askAgain, until each has
// answered or ended, or ResyncWithin has passed. A link whose peer stays
// silent that long fails with ErrFramesLost: its peer is gone or cannot
// be heard, and either way nothing shows whether frames were lost, so a
// stream whose last frames were would otherwise wait for ever. It reports
// false once the endpoint is closed.
func (e *Endpoint) syncAll(links []*Link, tick <-chan time.Time) bool {
	deadline := time.Now().Add(ResyncWithin)
	var asked time.Time
	for {
		now := time.Now()
		ask := now.Sub(asked) >= askAgain
		if ask {
			asked = now
		}
		pending := links[:0] // links is this resync's own: kept in place
		for _, l := range links {
			if !l.unsynced.Load() || !l.attached() {
				continue
			}
			if ask && l.sync(true) != nil {
				continue // closed: it needs none
			}
			pending = append(pending, l)
		}
		if len(pending) == 0 {
			return true
		}
		if now.After(deadline) {
			for _, l := range pending {
				// As a gap in dispatch: nothing more is received, and
				// sending stays open for the session's goodbye.
				l.detach()
				l.onFail(fmt.Errorf("%w: no answer to a sync within %v", ErrFramesLost, ResyncWithin))
			}
			return true
		}
		links = pending
		select {
		case <-e.ctx.Done():
			return false
		case <-tick:
		}
	}
}

// Up reports whether the endpoint receives: a session that starts while
// it does not would lose its first frames.
func (e *Endpoint) Up() bool { return e.feed.Up() }

// Connected reports whether the endpoint both sends and receives.
func (e *Endpoint) Connected() bool { return e.nc.IsConnected() && e.feed.Up() }

// CutOff reports whether NATS stayed away past ResyncWithin, so that the
// endpoint's owner was told to end its sessions, and has not come back
// since. Their goodbyes wait in the connection, so the peers that held
// them must learn it otherwise (serve.AnnounceCutOff).
func (e *Endpoint) CutOff() bool {
	if e.cutOff.Load() && e.Connected() {
		e.cutOff.Store(false)
	}
	return e.cutOff.Load()
}

// linkList returns the links attached now.
func (e *Endpoint) linkList() []*Link {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Collect(maps.Values(e.links))
}

// Close unsubscribes; links stop receiving.
func (e *Endpoint) Close() error {
	e.cancel()
	return e.feed.Close()
}

func (e *Endpoint) dispatch(m natsfeed.Msg) {
	id := m.Subject[bytes.LastIndexByte(m.Subject, '.')+1:]
	e.mu.Lock()
	l := e.links[string(id)]
	e.mu.Unlock()
	if l == nil {
		m.Lease.Release()
		return // a session that has ended here
	}
	f, err := DecodeFrame(m.Data)
	if err == nil {
		want := l.seqIn + 1
		if f.Kind == KindSync {
			want = l.seqIn // a sync takes no number
		}
		if f.Seq != want {
			err = fmt.Errorf("%w: expected frame %d, got %d", ErrFramesLost, want, f.Seq)
		}
	}
	if err != nil {
		m.Lease.Release()
		// Nothing more is received; sending stays open for the
		// session's goodbye.
		l.detach()
		l.onFail(err)
		return
	}
	if f.Kind == KindSync {
		ask := len(f.Payload) == 1 && f.Payload[0] == syncAsk
		m.Lease.Release()
		if ask {
			l.sync(false) // a closed link needs none
		} else {
			l.unsynced.Store(false)
		}
		return
	}
	l.seqIn = f.Seq
	f.Header = m.Header
	f.Lease = m.Lease
	l.handle(f)
}

// Link is one session's pair of subjects: frames out to the peer's
// subject, numbered; frames in from this endpoint's, checked.
type Link struct {
	e      *Endpoint
	id     string
	out    string
	handle func(Frame)
	onFail func(error)
	seqIn  uint64 // the subscription goroutine's
	// unsynced: a resync asked for a sync and none has come back yet.
	unsynced atomic.Bool

	mu     sync.Mutex
	seqOut uint64
	closed bool
	// seen is seqOut at the endpoint's last look, and trailed the last
	// number a trailing sync carried.
	seen, trailed uint64
}

// trail sends a sync if frames went out before the endpoint's last look
// and none since, unless one was sent for them already.
func (l *Link) trail() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	quiet := l.seqOut == l.seen
	l.seen = l.seqOut
	if !quiet || l.seqOut == l.trailed {
		return
	}
	l.trailed = l.seqOut
	l.publish(AppendFrame(l.e.buffer(), KindSync, l.seqOut, nil), nil) // a lost one only misses a check
}

// Attach starts a session's link: frames for session id reach handle;
// frames sent go to out. onFail learns of lost or undecodable frames; the
// link receives nothing more by then, and sends until closed, so that the
// peer can be told.
func (e *Endpoint) Attach(id, out string, handle func(Frame), onFail func(error)) *Link {
	l := &Link{e: e, id: id, out: out, handle: handle, onFail: onFail}
	e.mu.Lock()
	e.links[id] = l
	e.mu.Unlock()
	return l
}

// ErrLinkClosed is returned by Send after Close.
var ErrLinkClosed = errors.New("routing: link closed")

// Send sends a frame. Frames of one link leave in the order Send is
// called.
func (l *Link) Send(k Kind, payload []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrLinkClosed
	}
	l.seqOut++
	return l.publish(AppendFrame(l.e.buffer(), k, l.seqOut, payload), nil)
}

// sync sends a sync, which asks for one back if ask. It takes no
// number: it carries the last one sent.
func (l *Link) sync(ask bool) error {
	var payload []byte
	if ask {
		payload = []byte{syncAsk}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrLinkClosed
	}
	return l.publish(AppendFrame(l.e.buffer(), KindSync, l.seqOut, payload), nil)
}

func (e *Endpoint) buffer() []byte {
	if b, ok := e.bufs.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, 512)
}

// publish sends an encoded frame with headers h, if any (NATS copies
// both), and recycles the frame's buffer.
func (l *Link) publish(frame []byte, h nats.Header) error {
	var err error
	if h == nil {
		err = l.e.nc.Publish(l.out, frame)
	} else {
		err = l.e.nc.PublishMsg(&nats.Msg{Subject: l.out, Data: frame, Header: h})
	}
	l.e.bufs.Put(&frame)
	if err != nil {
		return fmt.Errorf("routing: publish: %w", err)
	}
	return nil
}

// DataRoom is the room SendData needs in front of the stream bytes: a
// frame's header and a Data message's, with the largest sequence number,
// alias and length.
const DataRoom = 24

// SendData sends b[DataRoom:] as a relay Data message of alias. It writes
// the headers into the room in front, so the bytes are published where
// they are instead of being copied into a frame first. b is the caller's
// again on return.
func (l *Link) SendData(alias uint32, b []byte) error {
	var n [9]byte
	return l.sendInPlace(b, alias, 1, compact.AppendUint(n[:0], uint64(len(b)-DataRoom)))
}

// SendBuffers sends a relay Data message of alias whose count buffers,
// each encoded with its length, are b[DataRoom:]: a batch gathered behind
// room for the headers, published from where it was gathered. b is the
// caller's again on return.
func (l *Link) SendBuffers(alias uint32, count int, b []byte) error {
	return l.sendInPlace(b, alias, count, nil)
}

// sendInPlace publishes b[DataRoom:] behind a Data frame's header and the
// Data message's head, written into the room in front: alias, count and
// then first, the length of the one buffer when b holds its bare bytes.
func (l *Link) sendInPlace(b []byte, alias uint32, count int, first []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrLinkClosed
	}
	l.seqOut++
	var room [DataRoom]byte
	h := append(relay.AppendDataBuffersPrefix(AppendFrame(room[:0], Kind(relay.TypeData), l.seqOut, nil), alias, count), first...)
	start := DataRoom - len(h)
	copy(b[start:], h)
	if err := l.e.nc.Publish(l.out, b[start:]); err != nil {
		return fmt.Errorf("routing: publish: %w", err)
	}
	return nil
}

// SendMessage sends a relay message.
func (l *Link) SendMessage(m relay.Message) error { return l.SendMessageHeader(m, nil) }

// SendMessageHeader sends a relay message with NATS headers h (nil for
// none), which the peer's Frame carries.
func (l *Link) SendMessageHeader(m relay.Message, h nats.Header) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrLinkClosed
	}
	l.seqOut++
	return l.publish(m.AppendPayload(AppendFrame(l.e.buffer(), Kind(m.Type()), l.seqOut, nil)), h)
}

// Close detaches the link and stops its sending; later frames for the
// session are ignored.
func (l *Link) Close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.detach()
}

// attached reports whether the link still receives.
func (l *Link) attached() bool {
	l.e.mu.Lock()
	defer l.e.mu.Unlock()
	return l.e.links[l.id] == l
}

// detach stops the link's receiving.
func (l *Link) detach() {
	l.e.mu.Lock()
	if l.e.links[l.id] == l {
		delete(l.e.links, l.id)
	}
	l.e.mu.Unlock()
}
