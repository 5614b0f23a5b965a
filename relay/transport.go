package relay

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
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

// WebSocketFramed adapts a WebSocket connection to protomux.Framed.
// ReadMessage is for one goroutine; WriteMessage may be called from many.
type WebSocketFramed struct {
	c            *websocket.Conn
	writeTimeout time.Duration
	wmu          sync.Mutex
	// scratch, when set, is where messages are read before being copied
	// out at their size: the library's ReadMessage reads through a buffer
	// that starts small and grows, reallocating and copying some seven
	// times for a 30 KB message. A client keeps one for its connection; a
	// relay, whose sessions are mostly idle, does not.
	scratch []byte
}

// maxScratch is the largest scratch buffer kept after a read.
const maxScratch = 256 << 10

// NewWebSocketFramed wraps c, refusing received messages over maxFrame
// bytes (the WebSocket library enforces it before buffering) and failing
// a write that blocks longer than writeTimeout, so that a peer that stops
// reading cannot hold a writer forever.
func NewWebSocketFramed(c *websocket.Conn, maxFrame int64, writeTimeout time.Duration) *WebSocketFramed {
	c.SetReadLimit(maxFrame)
	return &WebSocketFramed{c: c, writeTimeout: writeTimeout}
}

// ReadMessage returns the next binary message.
func (w *WebSocketFramed) ReadMessage() ([]byte, error) {
	t, r, err := w.c.NextReader()
	if err != nil {
		return nil, fmt.Errorf("relay: websocket read: %w", err)
	}
	if t != websocket.BinaryMessage {
		return nil, ErrTextMessage
	}
	if w.scratch == nil {
		p, err := io.ReadAll(r)
		if err != nil {
			return nil, fmt.Errorf("relay: websocket read: %w", err)
		}
		return p, nil
	}
	b := w.scratch[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		k, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+k]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("relay: websocket read: %w", err)
		}
	}
	if cap(b) <= maxScratch {
		w.scratch = b
	}
	return bytes.Clone(b), nil
}

// WriteMessage sends p as one binary message.
func (w *WebSocketFramed) WriteMessage(p []byte) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	w.c.SetWriteDeadline(time.Now().Add(w.writeTimeout))
	if err := w.c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return fmt.Errorf("relay: websocket write: %w", err)
	}
	return nil
}

// Close closes the connection.
func (w *WebSocketFramed) Close() error { return w.c.Close() }
