package routing

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/dhtrelay/dht-relay/relay"
)

// ErrNATSLost means a node lost its NATS connection: frames sent
// meanwhile may be lost without a later frame to show the gap, so the
// sessions it carried end.
var ErrNATSLost = errors.New("relay: connection between edge and worker lost")

// ErrFramesLost means a session's frames arrived with a gap: NATS dropped
// some.
var ErrFramesLost = errors.New("routing: frames lost between edge and worker")

// pendingLimit bounds what NATS may queue for an endpoint's subscription.
// Credit keeps stream data far below it; control frames are small and
// limited per session. Past it NATS drops frames, and the sequence check
// fails the sessions concerned.
const (
	pendingMsgs  = 1 << 20
	pendingBytes = 1 << 30
)

// Endpoint is an edge's or a worker's end of all its sessions: one NATS
// subscription on prefix.* whose messages it hands to each session's Link,
// in order, on the subscription's goroutine. Handlers must not block.
type Endpoint struct {
	nc     *nats.Conn
	prefix string
	sub    *nats.Subscription

	bufs sync.Pool // *[]byte: frames being encoded, so idle links hold no buffer

	mu    sync.Mutex
	links map[string]*Link
}

// NewEndpoint subscribes to prefix.*.
func NewEndpoint(nc *nats.Conn, prefix string) (*Endpoint, error) {
	e := &Endpoint{nc: nc, prefix: prefix, links: map[string]*Link{}}
	sub, err := nc.Subscribe(prefix+".*", e.dispatch)
	if err != nil {
		return nil, fmt.Errorf("routing: subscribe %s: %w", prefix, err)
	}
	if err := sub.SetPendingLimits(pendingMsgs, pendingBytes); err != nil {
		sub.Unsubscribe()
		return nil, fmt.Errorf("routing: pending limits: %w", err)
	}
	e.sub = sub
	return e, nil
}

// Close unsubscribes; links stop receiving.
func (e *Endpoint) Close() error { return e.sub.Unsubscribe() }

func (e *Endpoint) dispatch(m *nats.Msg) {
	id := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	e.mu.Lock()
	l := e.links[id]
	e.mu.Unlock()
	if l == nil {
		return // a session that has ended here
	}
	f, err := DecodeFrame(m.Data)
	if err == nil && f.Seq != l.seqIn+1 {
		err = fmt.Errorf("%w: expected frame %d, got %d", ErrFramesLost, l.seqIn+1, f.Seq)
	}
	if err != nil {
		l.Close()
		l.onFail(err)
		return
	}
	l.seqIn = f.Seq
	f.Header = m.Header
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
