package routing

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/dhtrelay/dht-relay/internal/natsfeed"
	"github.com/dhtrelay/dht-relay/relay"
)

// ErrNATSLost means a node lost its NATS connection: frames sent
// meanwhile may be lost without a later frame to show the gap, so the
// sessions it carried end.
var ErrNATSLost = errors.New("relay: connection between edge and worker lost")

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

	mu    sync.Mutex
	links map[string]*Link
}

// NewEndpoint subscribes to prefix.* on the server nc is connected to.
// lost learns when that subscription's connection failed: frames may have
// been lost, and the sessions they belonged to cannot go on.
func NewEndpoint(nc *nats.Conn, prefix string, lost func(error)) (*Endpoint, error) {
	e := &Endpoint{nc: nc, links: map[string]*Link{}}
	feed, err := natsfeed.Start(natsfeed.Config{NATS: nc, Subject: prefix + ".*", Handle: e.dispatch, Lost: lost})
	if err != nil {
		return nil, fmt.Errorf("routing: subscribe %s: %w", prefix, err)
	}
	e.feed = feed
	return e, nil
}

// Up reports whether the endpoint receives: a session that starts while
// it does not would lose its first frames.
func (e *Endpoint) Up() bool { return e.feed.Up() }

// Close unsubscribes; links stop receiving.
func (e *Endpoint) Close() error { return e.feed.Close() }

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
		l.Close()
		l.onFail(err)
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

	mu     sync.Mutex
	seqOut uint64
	closed bool
}

// Attach starts a session's link: frames for session id reach handle;
// frames sent go to out. onFail learns of lost or undecodable frames; the
// link is closed by then.
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

// Close detaches the link; later frames for the session are ignored.
func (l *Link) Close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.e.mu.Lock()
	if l.e.links[l.id] == l {
		delete(l.e.links, l.id)
	}
	l.e.mu.Unlock()
}
