package relay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Transports. The WebSocket transport carries one Protomux frame per binary
// message, both ways; the TCP transport is a SecretStream (Noise XX) over
// the socket, whose messages are the frames (secretstream.Stream is a
// protomux.Framed as it is).

// ErrTextMessage means a WebSocket peer sent a text message; the protocol
// is binary only.
var ErrTextMessage = errors.New("relay: text message on the relay websocket")

// ReadBudget admits the bytes that readers sharing it hold in messages
// being read.
type ReadBudget interface {
	Take(n int) bool
	Give(n int)
}

// ErrReadBudget means a message was not read: the buffer it needs is more
// than what the read budget shared with other readers has left.
var ErrReadBudget = errors.New("relay: read budget spent")

// WebSocketFramed adapts a WebSocket connection to protomux.Framed.
// ReadMessage is for one goroutine; WriteMessage may be called from many.
type WebSocketFramed struct {
	c            *websocket.Conn
	writeTimeout time.Duration
	wmu          sync.Mutex
	// server, on the server side, is the connection frames are written
	// to directly: unmasked, a frame is its header and the payload as it
	// is, so a message gathered from several buffers leaves in one
	// writev, and the library's copy into its write buffer is saved.
	server net.Conn
	// gather, when server is a socket, writes a frame's parts with one
	// writev. Another connection (TLS) would take each part as a write
	// and a record of its own, so there a frame is copied together
	// first, into a buffer from the read pool.
	gather *gatherWriter
	head   [maxFrameHeader]byte
	parts  [][]byte // the frame being written, header first
	// reads, when set, lends the buffers messages are read into before
	// being copied out at their size: the library's ReadMessage reads
	// through a buffer that starts small and grows, reallocating and
	// copying some seven times for a 30 KB message, and at upload rates
	// that garbage kept the collector busy most of the time.
	reads *sync.Pool
	// budget, when set, admits the bytes a lent read's buffer grows by
	// past the pool's buffer, until Return; taken is what the message
	// being read holds. Messages that fit the pool's buffer, which is
	// most, never wait on it.
	budget ReadBudget
	taken  int
	// maxRead is the largest message read from now on, at most the
	// library's limit set when made (SetReadLimit).
	maxRead atomic.Int64
	// split is the stream data message being read in pieces, if any;
	// splitFrom is the buffer it began in, lent until the split has read
	// all of it, and splitTaken what that buffer holds of the budget.
	split      *dataSplit
	splitFrom  *[]byte
	splitTaken int
}

// Splitting reports whether a long message is being read in pieces: the
// reader must come back for the rest within the write timeout, and not
// park meanwhile.
func (w *WebSocketFramed) Splitting() bool { return w.split != nil }

// ErrMessageTooLarge means a message was longer than the read limit.
var ErrMessageTooLarge = errors.New("relay: message too large")

// SetReadLimit sets the largest message read from now on, up to the
// maxFrame it was made with; it may be called while another goroutine
// reads, as a server does that allows a client little until it has said
// who it is.
func (w *WebSocketFramed) SetReadLimit(n int64) { w.maxRead.Store(n) }

// maxReadBuffer is the largest read buffer given back to the pool.
const maxReadBuffer = 256 << 10

// NewReadBuffers returns a pool of read buffers for ReadBuffersFrom.
func NewReadBuffers() *sync.Pool {
	return &sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}
}

// ReadBuffersFrom makes ReadMessage read each message into a buffer from
// pool, made by NewReadBuffers, and copy it out at its size. A relay
// shares one pool among its sessions, which then hold no buffer between
// messages.
func (w *WebSocketFramed) ReadBuffersFrom(pool *sync.Pool) { w.reads = pool }

// SetReadBudget makes what ReadLent's buffer grows by past the pool's
// buffer count against b until Return: a message that does not fit fails
// with ErrReadBudget. A message begun must then come whole within the
// write timeout.
func (w *WebSocketFramed) SetReadBudget(b ReadBudget) { w.budget = b }

// take admits n more bytes of read buffer.
func (w *WebSocketFramed) take(n int) bool {
	if w.budget == nil {
		return true
	}
	if !w.budget.Take(n) {
		return false
	}
	w.taken += n
	return true
}

// giveBack returns what the message read last held.
func (w *WebSocketFramed) giveBack() {
	if w.budget != nil && w.taken > 0 {
		w.budget.Give(w.taken)
	}
	w.taken = 0
}

// maxFrameHeader is the longest header of an unmasked frame: opcode,
// length marker and a 64-bit length.
const maxFrameHeader = 10

// NewWebSocketFramed wraps c, refusing received messages over maxFrame
// bytes (the WebSocket library enforces it before buffering) and failing
// a write that blocks longer than writeTimeout, so that a peer that stops
// reading cannot hold a writer forever.
func NewWebSocketFramed(c *websocket.Conn, maxFrame int64, writeTimeout time.Duration) *WebSocketFramed {
	c.SetReadLimit(maxFrame)
	w := &WebSocketFramed{c: c, writeTimeout: writeTimeout}
	w.maxRead.Store(maxFrame)
	return w
}

// NewServerWebSocketFramed is NewWebSocketFramed for the server side of
// c, whose frames it writes itself, reading through buffers from reads
// (as ReadBuffersFrom). Pongs go out through the same writer, so that no
// write of the library's own lands inside a message.
func NewServerWebSocketFramed(c *websocket.Conn, maxFrame int64, writeTimeout time.Duration, reads *sync.Pool) *WebSocketFramed {
	w := NewWebSocketFramed(c, maxFrame, writeTimeout)
	w.server = c.NetConn()
	w.gather = newGatherWriter(w.server)
	w.reads = reads
	c.SetPingHandler(func(data string) error {
		w.wmu.Lock()
		defer w.wmu.Unlock()
		return w.writeFrame(websocket.PongMessage, [][]byte{[]byte(data)})
	})
	return w
}

// ReadMessage returns the next binary message.
func (w *WebSocketFramed) ReadMessage() ([]byte, error) {
	if w.reads == nil {
		r, err := w.next()
		if err != nil {
			return nil, err
		}
		p, err := io.ReadAll(r)
		if err != nil {
			return nil, fmt.Errorf("relay: websocket read: %w", err)
		}
		if int64(len(p)) > w.maxRead.Load() {
			return nil, fmt.Errorf("%w: over %d bytes", ErrMessageTooLarge, w.maxRead.Load())
		}
		return p, nil
	}
	bp, err := w.ReadLent()
	if err != nil {
		return nil, err
	}
	p := bytes.Clone(*bp)
	w.Return(bp)
	return p, nil
}

// ReadLent returns the next binary message in a buffer from the pool that
// ReadBuffersFrom or NewServerWebSocketFramed set, or from a pool of its
// own, without ReadMessage's copy; the caller gives it back with Return
// once done with the message's bytes.
//
// A message of stream data longer than the pool's buffer comes as several
// Data messages, each in a buffer of the pool (see dataSplit).
func (w *WebSocketFramed) ReadLent() (*[]byte, error) {
	if w.reads == nil {
		w.reads = NewReadBuffers()
	}
	if w.split != nil {
		return w.readSplit(w.reads.Get().(*[]byte))
	}
	r, err := w.next()
	if err != nil {
		return nil, err
	}
	if w.budget != nil {
		// A message that holds budget must come whole in time: a client
		// that starts one and stalls would hold its bytes for ever.
		w.c.SetReadDeadline(time.Now().Add(w.writeTimeout))
		defer w.c.SetReadDeadline(time.Time{})
	}
	bp := w.reads.Get().(*[]byte)
	b := (*bp)[:0]
	for {
		if len(b) == cap(b) && cap(b) >= maxReadBuffer {
			// As long as the pool keeps, and not longer: messages below
			// that are read whole into buffers the pool keeps.
			if s, ok := startSplit(b, r, w.maxRead.Load()); ok {
				w.split, w.splitFrom = s, bp
				w.splitTaken, w.taken = w.taken, 0
				return w.readSplit(w.reads.Get().(*[]byte))
			}
		}
		if len(b) == cap(b) {
			// Doubling, admitted before it is made.
			if !w.take(cap(b)) {
				w.giveBack()
				return nil, ErrReadBudget
			}
			b = slices.Grow(b, cap(b))
		}
		k, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+k]
		if int64(len(b)) > w.maxRead.Load() {
			w.giveBack()
			return nil, fmt.Errorf("%w: over %d bytes", ErrMessageTooLarge, w.maxRead.Load())
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			w.giveBack()
			return nil, fmt.Errorf("relay: websocket read: %w", err)
		}
	}
	*bp = b
	return bp, nil
}

// readSplit reads the next piece of the message being split into bp.
func (w *WebSocketFramed) readSplit(bp *[]byte) (*[]byte, error) {
	if w.budget != nil {
		// Each piece must come in time, as a message read whole must: a
		// client that stalls inside one would hold its buffers for ever.
		w.c.SetReadDeadline(time.Now().Add(w.writeTimeout))
		defer w.c.SetReadDeadline(time.Time{})
	}
	b, err := w.split.next((*bp)[:0])
	if errors.Is(err, errNeedRoom) {
		// A buffer that is one write comes whole, in room admitted
		// before it is made.
		if !w.take(w.split.need - cap(*bp)) {
			err = ErrReadBudget
		} else {
			*bp = slices.Grow((*bp)[:0], w.split.need)
			b, err = w.split.next(*bp)
		}
	}
	if w.splitFrom != nil && (err != nil || !w.split.pending()) {
		w.recycle(w.splitFrom)
		if w.budget != nil && w.splitTaken > 0 {
			w.budget.Give(w.splitTaken)
		}
		w.splitFrom, w.splitTaken = nil, 0
	}
	if err != nil {
		w.split = nil
		w.Return(bp)
		return nil, err
	}
	if w.split.done() {
		w.split = nil
	}
	*bp = b
	return bp, nil
}

// Return gives back a buffer ReadLent lent.
func (w *WebSocketFramed) Return(bp *[]byte) {
	w.giveBack()
	w.recycle(bp)
}

// recycle gives a read buffer back to the pool, unless it grew past what
// the pool keeps.
func (w *WebSocketFramed) recycle(bp *[]byte) {
	if cap(*bp) <= maxReadBuffer {
		w.reads.Put(bp)
	}
}

// next starts reading the next message, which must be binary.
func (w *WebSocketFramed) next() (io.Reader, error) {
	t, r, err := w.c.NextReader()
	if err != nil {
		return nil, fmt.Errorf("relay: websocket read: %w", err)
	}
	if t != websocket.BinaryMessage {
		return nil, ErrTextMessage
	}
	return r, nil
}

// WriteMessage sends p as one binary message.
func (w *WebSocketFramed) WriteMessage(p []byte) error {
	return w.WriteMessageVec([][]byte{p})
}

// WriteMessageVec sends parts end to end as one binary message.
func (w *WebSocketFramed) WriteMessageVec(parts [][]byte) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if w.server != nil {
		return w.writeFrame(websocket.BinaryMessage, parts)
	}
	// The client side masks, which the library does as it copies into
	// its write buffer.
	w.c.SetWriteDeadline(time.Now().Add(w.writeTimeout))
	mw, err := w.c.NextWriter(websocket.BinaryMessage)
	if err == nil {
		for _, p := range parts {
			if _, err = mw.Write(p); err != nil {
				break
			}
		}
		if cerr := mw.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("relay: websocket write: %w", err)
	}
	return nil
}

// writeFrame writes one unmasked frame of opcode op on the server side;
// wmu is held.
func (w *WebSocketFramed) writeFrame(op int, parts [][]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	h := append(w.head[:0], 0x80|byte(op)) // FIN: never fragmented
	switch {
	case n < 126:
		h = append(h, byte(n))
	case n <= 0xffff:
		h = binary.BigEndian.AppendUint16(append(h, 126), uint16(n))
	default:
		h = binary.BigEndian.AppendUint64(append(h, 127), uint64(n))
	}
	w.server.SetWriteDeadline(time.Now().Add(w.writeTimeout))
	var err error
	if w.gather != nil {
		w.parts = append(append(w.parts[:0], h), parts...)
		err = w.gather.write(w.parts)
		clear(w.parts) // the parts are the caller's again
	} else {
		bp := w.reads.Get().(*[]byte)
		b := append((*bp)[:0], h...)
		for _, p := range parts {
			b = append(b, p...)
		}
		_, err = w.server.Write(b)
		*bp = b
		w.Return(bp)
	}
	if err != nil {
		return fmt.Errorf("relay: websocket write: %w", err)
	}
	return nil
}

// Close closes the connection.
func (w *WebSocketFramed) Close() error { return w.c.Close() }
