package routing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

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

// resyncPoll is how often a resync looks whether NATS is back.
const resyncPoll = 20 * time.Millisecond

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
	return e, nil
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
		for !e.nc.IsConnected() || !e.feed.Up() {
			if time.Now().After(deadline) {
				e.mu.Lock()
				e.resyncing = false
				e.mu.Unlock()
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
		links := make([]*Link, 0, len(e.links))
		for _, l := range e.links {
			links = append(links, l)
		}
		e.mu.Unlock()
		for _, l := range links {
			l.Send(KindSync, []byte{syncAsk}) // a closed link needs none
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

// Up reports whether the endpoint receives: a session that starts while
// it does not would lose its first frames.
func (e *Endpoint) Up() bool { return e.feed.Up() }

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
	if err == nil && f.Seq != l.seqIn+1 {
		err = fmt.Errorf("%w: expected frame %d, got %d", ErrFramesLost, l.seqIn+1, f.Seq)
	}
	if err != nil {
		m.Lease.Release()
		// Nothing more is received; sending stays open for the
		// session's goodbye.
		l.detach()
		l.onFail(err)
		return
	}
	l.seqIn = f.Seq
	if f.Kind == KindSync {
		ask := len(f.Payload) == 1 && f.Payload[0] == syncAsk
		m.Lease.Release()
		if ask {
			l.Send(KindSync, nil) // a closed link needs none
		}
		return
	}
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

	mu     sync.Mutex
	seqOut uint64
	closed bool
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
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrLinkClosed
	}
	l.seqOut++
	var room [DataRoom]byte
	h := relay.AppendDataHeader(AppendFrame(room[:0], Kind(relay.TypeData), l.seqOut, nil), alias, len(b)-DataRoom)
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

// detach stops the link's receiving.
func (l *Link) detach() {
	l.e.mu.Lock()
	if l.e.links[l.id] == l {
		delete(l.e.links, l.id)
	}
	l.e.mu.Unlock()
}
