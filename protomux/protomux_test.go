package protomux

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/compact"
)

// pipe is an in-memory framed stream pair.
type pipe struct {
	in     chan []byte
	out    chan []byte
	closed chan struct{}
	once   *sync.Once
}

func newPipe() (*pipe, *pipe) {
	a, b := make(chan []byte, 64), make(chan []byte, 64)
	closed, once := make(chan struct{}), &sync.Once{}
	return &pipe{a, b, closed, once}, &pipe{b, a, closed, once}
}

func (p *pipe) ReadMessage() ([]byte, error) {
	select {
	case m := <-p.in:
		return m, nil
	case <-p.closed:
		return nil, io.EOF
	}
}

func (p *pipe) WriteMessage(m []byte) error {
	select {
	case p.out <- append([]byte(nil), m...):
		return nil
	case <-p.closed:
		return io.ErrClosedPipe
	}
}

func (p *pipe) Close() { p.once.Do(func() { close(p.closed) }) }

type msg struct {
	typ uint64
	p   string
}

type recorder struct {
	opened chan []byte
	msgs   chan msg
	closed chan bool
}

func newRecorder() *recorder {
	return &recorder{opened: make(chan []byte, 4), msgs: make(chan msg, 64), closed: make(chan bool, 4)}
}

func (r *recorder) handlers() Handlers {
	return Handlers{
		OnOpen:    func(h []byte) { r.opened <- append([]byte(nil), h...) },
		OnMessage: func(t uint64, p []byte) { r.msgs <- msg{t, string(p)} },
		OnClose:   func(remote bool) { r.closed <- remote },
	}
}

func recv[T any](t *testing.T, ch chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("timed out")
	}
	panic("unreachable")
}

func muxPair(t *testing.T) (*Mux, *Mux, *pipe) {
	a, b := newPipe()
	ma, mb := New(a), New(b)
	errs := make(chan error, 2)
	go func() { errs <- ma.Run() }()
	go func() { errs <- mb.Run() }()
	t.Cleanup(func() { a.Close(); <-errs; <-errs })
	return ma, mb, a
}

// noOpensWait checks that m keeps no table of waiting opens once none
// waits: an idle session's mux holds none.
func noOpensWait(t *testing.T, m *Mux) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.infos != nil {
		t.Fatalf("no open waits, yet the mux keeps %d entries for them", len(m.infos))
	}
}

func TestOpenPairSendBatchClose(t *testing.T) {
	// Both channels open before either mux reads: an open that arrives
	// while no local channel has opened is rejected, as in protomux, so
	// with the muxes running, a's open could reach b before b opened.
	a, b := newPipe()
	ma, mb := New(a), New(b)
	ra, rb := newRecorder(), newRecorder()
	ca := ma.CreateChannel("proto", []byte{1}, ra.handlers())
	cb := mb.CreateChannel("proto", []byte{1}, rb.handlers())
	if err := ca.Open([]byte("hs-a")); err != nil {
		t.Fatal(err)
	}
	if err := cb.Open([]byte("hs-b")); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	go func() { errs <- ma.Run() }()
	go func() { errs <- mb.Run() }()
	t.Cleanup(func() { a.Close(); <-errs; <-errs })
	if h := recv(t, ra.opened); string(h) != "hs-b" {
		t.Fatalf("a got handshake %q", h)
	}
	if h := recv(t, rb.opened); string(h) != "hs-a" {
		t.Fatalf("b got handshake %q", h)
	}
	noOpensWait(t, ma)
	noOpensWait(t, mb)
	ca.Send(3, []byte("x"))
	ma.Cork()
	ca.Send(1, []byte("one"))
	ca.Send(300, bytes.Repeat([]byte("z"), 300))
	ma.Uncork()
	for _, want := range []msg{{3, "x"}, {1, "one"}, {300, string(bytes.Repeat([]byte("z"), 300))}} {
		if got := recv(t, rb.msgs); got != want {
			t.Fatalf("got %v want %v", got, want)
		}
	}
	ca.Close()
	if remote := recv(t, rb.closed); !remote {
		t.Fatal("b: close not remote")
	}
	if remote := recv(t, ra.closed); remote {
		t.Fatal("a: close reported remote")
	}
	if err := ca.Send(1, nil); !errors.Is(err, ErrChannelClosed) {
		t.Fatalf("send after close: %v", err)
	}
}

// TestSendInWritesHeaderInFront: a message sent from in place arrives as
// Send's would, with its header written into the room when it fits there
// (and the message not copied) and the room left alone when it does not.
func TestSendInWritesHeaderInFront(t *testing.T) {
	a, b := newPipe()
	ma, mb := New(a), New(b)
	rb := newRecorder()
	ca := ma.CreateChannel("proto", nil, Handlers{})
	cb := mb.CreateChannel("proto", nil, rb.handlers())
	ca.Open(nil) // both open before either mux reads, as above
	cb.Open(nil)
	go ma.Run()
	go mb.Run()
	t.Cleanup(func() { a.Close() })
	for _, c := range []struct {
		typ  uint64
		room int
		copy bool
	}{{2, 2, false}, {2, 5, false}, {300, 3, true}, {300, 4, false}, {2, 0, true}} {
		b := append(bytes.Repeat([]byte{0xee}, c.room), "payload"...)
		if err := ca.SendIn(c.typ, b, c.room); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, rb.msgs); got != (msg{c.typ, "payload"}) {
			t.Fatalf("type %d, room %d: got %v", c.typ, c.room, got)
		}
		if untouched := bytes.Count(b[:c.room], []byte{0xee}) == c.room; untouched != c.copy {
			t.Fatalf("type %d, room %d: room untouched %v", c.typ, c.room, untouched)
		}
	}
}

func TestUnpairedOpenIsRejectedOrClaimed(t *testing.T) {
	ma, mb, _ := muxPair(t)
	ra := newRecorder()
	ca := ma.CreateChannel("nobody", nil, ra.handlers())
	ca.Open(nil)
	if remote := recv(t, ra.closed); !remote {
		t.Fatal("rejection not reported as remote close")
	}
	rb := newRecorder()
	mb.Pair("claimed", nil, func(id []byte) {
		c := mb.CreateChannel("claimed", id, rb.handlers())
		c.Open(nil)
	})
	ra2 := newRecorder()
	c2 := ma.CreateChannel("claimed", nil, ra2.handlers())
	c2.Open([]byte("h"))
	recv(t, ra2.opened)
	if h := recv(t, rb.opened); string(h) != "h" {
		t.Fatalf("claimed handshake %q", h)
	}
	noOpensWait(t, ma) // one open rejected, one answered
	noOpensWait(t, mb) // one open rejected, one claimed
	// The id freed by the rejection is reused.
	if c2.localID != 1 {
		t.Fatalf("local id %d, want 1 reused", c2.localID)
	}
}

// TestPeerIDsAreBounded: a peer opening channel after channel with the
// next id, each rejected, breaks the stream at maxRemoteIDs instead of
// growing the table of its ids for ever.
func TestPeerIDsAreBounded(t *testing.T) {
	a, b := newPipe()
	m := New(b)
	done := make(chan error, 1)
	go func() { done <- m.Run() }()
	go func() { // the rejects
		for {
			if _, err := a.ReadMessage(); err != nil {
				return
			}
		}
	}()
	for rid := uint64(1); rid <= maxRemoteIDs+1; rid++ {
		open := append(compact.AppendUint([]byte{0, 1}, rid), 1, 'p', 0)
		if err := a.WriteMessage(open); err != nil {
			break
		}
	}
	if err := recv(t, done); !errors.Is(err, ErrInvalidOpen) {
		t.Fatalf("got %v", err)
	}
	m.mu.Lock()
	n := len(m.remote)
	m.mu.Unlock()
	if n > maxRemoteIDs {
		t.Fatalf("a table of %d peer ids", n)
	}
}

func TestBadOpenBreaksStream(t *testing.T) {
	a, b := newPipe()
	m := New(b)
	done := make(chan error, 1)
	go func() { done <- m.Run() }()
	a.WriteMessage([]byte{0, 1, 5, 1, 'p', 0}) // id 5 skips ahead
	if err := recv(t, done); !errors.Is(err, ErrInvalidOpen) {
		t.Fatalf("got %v", err)
	}
}

// gatherPipe is a pipe that also sends messages gathered from parts,
// counting how many did.
type gatherPipe struct {
	*pipe
	gathered int
}

func (g *gatherPipe) WriteMessageVec(parts [][]byte) error {
	g.gathered++
	return g.WriteMessage(bytes.Join(parts, nil))
}

// TestSendVecJoinsParts: a message sent from parts arrives as one, its
// parts end to end, whether the transport gathers them, copies them
// together, or the mux is corked and batches it; and the parts are left
// as they were.
func TestSendVecJoinsParts(t *testing.T) {
	parts := [][]byte{[]byte("head:"), []byte("one,"), nil, bytes.Repeat([]byte("z"), 300)}
	want := msg{300, "head:one," + string(bytes.Repeat([]byte("z"), 300))}
	for _, gathers := range []bool{true, false} {
		a, b := newPipe()
		ga := &gatherPipe{pipe: a}
		var fa Framed = a
		if gathers {
			fa = ga
		}
		ma, mb := New(fa), New(b)
		rb := newRecorder()
		ca := ma.CreateChannel("proto", nil, Handlers{})
		cb := mb.CreateChannel("proto", nil, rb.handlers())
		ca.Open(nil) // both open before either mux reads, as above
		cb.Open(nil)
		go ma.Run()
		go mb.Run()
		if err := ca.SendVec(300, parts); err != nil {
			t.Fatal(err)
		}
		ma.Cork()
		ca.Send(3, []byte("x"))
		ca.SendVec(300, parts)
		ma.Uncork()
		for _, w := range []msg{want, {3, "x"}, want} {
			if got := recv(t, rb.msgs); got != w {
				t.Fatalf("gathering %v: got %v want %v", gathers, got, w)
			}
		}
		if wantGathered := map[bool]int{true: 1, false: 0}[gathers]; ga.gathered != wantGathered {
			t.Fatalf("gathering %v: %d gathered writes", gathers, ga.gathered)
		}
		a.Close()
	}
	if string(parts[0]) != "head:" || string(parts[1]) != "one," || len(parts[3]) != 300 {
		t.Fatal("the parts changed")
	}
}
