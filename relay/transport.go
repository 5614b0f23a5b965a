package relay

import (
	"errors"
	"fmt"
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
}

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
	t, p, err := w.c.ReadMessage()
	if err != nil {
		return nil, fmt.Errorf("relay: websocket read: %w", err)
	}
	if t != websocket.BinaryMessage {
		return nil, ErrTextMessage
	}
	return p, nil
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
