package relay

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/dhtrelay/dht-relay/compact"
)

// dataFrame encodes a Data message of alias on channel ch, as a protomux
// frame.
func dataFrame(ch uint64, alias uint32, ps ...[]byte) []byte {
	b := compact.AppendUint(compact.AppendUint(nil, ch), uint64(TypeData))
	return (&Data{Alias: alias, Buffers: MakeBuffers(ps...)}).AppendPayload(b)
}

// piece is one Data message as a split reads it.
type piece struct {
	ch      uint64
	alias   uint32
	buffers [][]byte
}

func readPiece(t testing.TB, frame []byte) piece {
	t.Helper()
	r := compact.NewReader(frame)
	p := piece{ch: r.Uint()}
	if typ := r.Uint(); typ != uint64(TypeData) {
		t.Fatalf("a piece of type %d", typ)
	}
	p.alias = r.Uint32()
	for range r.Uint() {
		p.buffers = append(p.buffers, bytes.Clone(r.Buffer()))
	}
	if r.Err() != nil || r.Len() != 0 {
		t.Fatalf("a piece that does not decode: %v, %d bytes left", r.Err(), r.Len())
	}
	return p
}

// serveMessages serves a WebSocket that sends msgs as binary messages and
// returns the client's end, which reads through pooled buffers.
func serveMessages(t *testing.T, msgs ...[]byte) *WebSocketFramed {
	t.Helper()
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for _, m := range msgs {
			c.WriteMessage(websocket.BinaryMessage, m)
		}
		c.ReadMessage() // until the client closes
	}))
	t.Cleanup(srv.Close)
	tr, err := DialWebSocket(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr.(*WebSocketFramed)
}

// TestLongStreamDataComesInPieces: a Data message longer than the pool's
// largest read buffer, as the JS client sends for many writes in one
// tick, is read as Data messages of the same channel and alias, split
// between its buffers: each buffer, a write of its own, comes whole (in a
// piece of its own when longer than a pool buffer), and only one longer
// than MaxWholeBuffer comes in parts. The bytes are the message's, in
// order, and the messages around it are read as usual.
func TestLongStreamDataComesInPieces(t *testing.T) {
	fill := func(n int, v byte) []byte { return bytes.Repeat([]byte{v}, n) }
	var bufs [][]byte
	bufs = append(bufs, fill(10, 1), fill(100<<10, 2), nil, fill(3, 3))
	for i := range 5 {
		bufs = append(bufs, fill(20<<10, byte(10+i)))
	}
	bufs = append(bufs, fill(300<<10, 4), fill(64<<10-30, 5), fill(MaxWholeBuffer+10, 6))
	for i := range 3000 {
		bufs = append(bufs, fill(i%7, byte(i))) // many tiny ones
	}
	long := dataFrame(300, 7, bufs...)
	short := dataFrame(1, 2, []byte("short"))
	f := serveMessages(t, short, long, short)

	read := func() ([]byte, int) {
		bp, err := f.ReadLent()
		if err != nil {
			t.Fatal(err)
		}
		b := bytes.Clone(*bp)
		c := cap(*bp)
		f.Return(bp)
		return b, c
	}
	if got, _ := read(); !bytes.Equal(got, short) {
		t.Fatalf("the first message read as %d bytes", len(got))
	}
	var got [][]byte
	parted := false // the last buffer read goes on in the next piece
	pieces := 0
	for {
		frame, c := read()
		if bytes.Equal(frame, short) {
			break
		}
		pieces++
		p := readPiece(t, frame)
		if p.ch != 300 || p.alias != 7 {
			t.Fatalf("a piece on channel %d alias %d", p.ch, p.alias)
		}
		if c > maxReadBuffer && (len(p.buffers) != 1 || len(p.buffers[0]) > MaxWholeBuffer) {
			t.Fatalf("a piece of %d buffers in a buffer of %d bytes", len(p.buffers), c)
		}
		for i, b := range p.buffers {
			if i == 0 && parted {
				got[len(got)-1] = append(got[len(got)-1], b...)
			} else {
				got = append(got, b)
			}
		}
		// A piece ends inside a buffer only when that buffer is longer
		// than any one write.
		last := len(got) - 1
		parted = last >= 0 && len(got[last]) < len(bufs[last])
		if parted && len(bufs[last]) <= MaxWholeBuffer {
			t.Fatalf("buffer %d of %d bytes came in parts", last, len(bufs[last]))
		}
	}
	if len(got) != len(bufs) {
		t.Fatalf("%d buffers came back of %d", len(got), len(bufs))
	}
	for i := range bufs {
		if !bytes.Equal(got[i], bufs[i]) {
			t.Fatalf("buffer %d: %d bytes came back of %d", i, len(got[i]), len(bufs[i]))
		}
	}
	if pieces < 3 {
		t.Fatalf("%d pieces for %d bytes", pieces, len(long))
	}
}

// TestLongStreamDataWhole: buffers that fit a read buffer are not split
// across pieces.
func TestLongStreamDataWhole(t *testing.T) {
	var bufs [][]byte
	for i := range 100 {
		bufs = append(bufs, bytes.Repeat([]byte{byte(i)}, 10<<10+i))
	}
	f := serveMessages(t, dataFrame(1, 1, bufs...))
	n := 0
	for n < len(bufs) {
		bp, err := f.ReadLent()
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range readPiece(t, *bp).buffers {
			if !bytes.Equal(b, bufs[n]) {
				t.Fatalf("buffer %d came back as %d bytes", n, len(b))
			}
			n++
		}
		f.Return(bp)
	}
}

// TestLongStreamDataRefused: a split message that ends before the
// buffers it declares fails as undecodable; one past the read limit fails
// as too large.
func TestLongStreamDataRefused(t *testing.T) {
	short := dataFrame(1, 1, bytes.Repeat([]byte{1}, 600<<10))
	short = short[:len(short)-1]
	f := serveMessages(t, short)
	var err error
	for err == nil {
		var bp *[]byte
		if bp, err = f.ReadLent(); err == nil {
			f.Return(bp)
		}
	}
	if !errors.Is(err, compact.ErrOutOfBounds) {
		t.Fatalf("a truncated message read as %v", err)
	}

	f = serveMessages(t, dataFrame(1, 1, bytes.Repeat([]byte{1}, 600<<10)))
	f.SetReadLimit(400 << 10)
	for err = nil; err == nil; {
		var bp *[]byte
		if bp, err = f.ReadLent(); err == nil {
			f.Return(bp)
		}
	}
	if !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("a message past the limit read as %v", err)
	}
}

// countingBudget is a ReadBudget without a limit that counts what is held.
type countingBudget struct{ held atomic.Int64 }

func (b *countingBudget) Take(n int) bool { b.held.Add(int64(n)); return true }
func (b *countingBudget) Give(n int)      { b.held.Add(-int64(n)) }

// TestStalledSplitTimesOut: a client that stops inside a long message of
// stream data fails the read within the write timeout, as inside a
// message read whole, and what the message held of the read budget comes
// back: a stalled split holds nothing for ever.
func TestStalledSplitTimesOut(t *testing.T) {
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		// 600 KiB of a message of a hundred 10 KiB buffers, and then
		// nothing: the stall comes after pieces were read.
		var bufs [][]byte
		for range 100 {
			bufs = append(bufs, make([]byte, 10<<10))
		}
		mw, _ := c.NextWriter(websocket.BinaryMessage)
		mw.Write(dataFrame(1, 1, bufs...)[:600<<10])
		c.ReadMessage() // until the client closes
	}))
	defer srv.Close()
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f := NewWebSocketFramed(c, 1<<30, 300*time.Millisecond)
	var b countingBudget
	f.SetReadBudget(&b)
	failed := make(chan error, 1)
	go func() {
		var err error
		for err == nil {
			var bp *[]byte
			if bp, err = f.ReadLent(); err == nil {
				f.Return(bp)
			}
		}
		failed <- err
	}()
	select {
	case err = <-failed:
	case <-time.After(10 * time.Second):
		c.Close()
		<-failed
		t.Fatal("a stalled message held its reader past the write timeout")
	}
	if ne, ok := errors.AsType[net.Error](err); !ok || !ne.Timeout() {
		t.Fatalf("a stalled message read as %v", err)
	}
	if f.Splitting() {
		t.Fatal("still splitting after the read failed")
	}
	if held := b.held.Load(); held != 0 {
		t.Fatalf("%d bytes of the budget still held", held)
	}
}

// FuzzSplit: splitting any message into pieces of a small buffer gives
// the buffers the message decodes to whole, or fails where decoding it
// whole fails.
func FuzzSplit(f *testing.F) {
	f.Add(dataFrame(1, 1, []byte("hello"), nil, bytes.Repeat([]byte{2}, 300)))
	f.Add(dataFrame(9, 3, bytes.Repeat([]byte{2}, 70), []byte{1}))
	f.Add(append(dataFrame(1, 1, make([]byte, 100)), 1, 2, 3))
	f.Fuzz(func(t *testing.T, msg []byte) {
		const size = 64
		if len(msg) < size {
			return
		}
		var whole Data
		r := compact.NewReader(msg)
		r.Uint()
		r.Uint()
		whole.decode(r)
		var want []byte
		for b := range whole.Buffers.All() {
			want = append(want, b...)
		}
		s, ok := startSplit(msg[:size], bytes.NewReader(msg[size:]), 1<<20)
		if !ok {
			return
		}
		var got []byte
		var err error
		for range len(msg) + 1 {
			var b []byte
			b, err = s.next(make([]byte, 0, size))
			if errors.Is(err, errNeedRoom) {
				if s.need <= size {
					t.Fatalf("asked for %d bytes of room with %d", s.need, size)
				}
				b, err = s.next(make([]byte, 0, s.need))
			}
			if err != nil {
				break
			}
			if len(b) > size && len(readPiece(t, b).buffers) != 1 {
				t.Fatalf("a piece of %d bytes holds more than one buffer", len(b))
			}
			for _, p := range readPiece(t, b).buffers {
				got = append(got, p...)
			}
			if s.done() {
				break
			}
		}
		if !s.done() && err == nil {
			t.Fatal("the split did not end")
		}
		if (err == nil) != (r.Err() == nil) {
			t.Fatalf("split: %v, whole: %v", err, r.Err())
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("split gave %x, whole %x", got, want)
		}
	})
}
