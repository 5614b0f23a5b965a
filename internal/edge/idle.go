package edge

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/dhtrelay/dht-relay/internal/readwait"
	"github.com/dhtrelay/dht-relay/relay"
)

// readBufferHijacker hands the WebSocket library a read buffer of ours
// when it takes over the connection, so that the edge can tell when no
// input is buffered and a session may park (the library keeps its own
// buffer private).
type readBufferHijacker struct {
	http.ResponseWriter
	br *bufio.Reader
}

func (h *readBufferHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil || rw.Reader.Buffered() > 0 {
		// Bytes before the upgrade completes: the library refuses them.
		return c, rw, err
	}
	h.br = bufio.NewReaderSize(c, idleReadBuffer)
	return c, bufio.NewReadWriter(h.br, rw.Writer), nil
}

// parkingWS is a WebSocket transport whose session gives up its reader
// goroutine while no input waits (session.Parker), and its read buffer:
// a parked session's is empty, and one is made again on waking.
type parkingWS struct {
	*relay.WebSocketFramed
	br   *bufio.Reader // what the WebSocket library reads through
	conn net.Conn      // what br reads
	fd   int
	p    *readwait.Poller

	mu     sync.Mutex
	closed bool
	resume func() // while parked
}

// newParkingWS wraps c for parking if its connection is a plain socket
// read through br; else it returns nil and the session keeps a reader.
func newParkingWS(c *websocket.Conn, br *bufio.Reader, f *relay.WebSocketFramed, p *readwait.Poller) *parkingWS {
	if p == nil || br == nil {
		return nil
	}
	// A TLS connection may hold decrypted input where the socket shows
	// none, so only a plain socket is watched (FD refuses the rest).
	conn := c.NetConn()
	fd, err := readwait.FD(conn)
	if err != nil {
		return nil
	}
	return &parkingWS{WebSocketFramed: f, br: br, conn: conn, fd: fd, p: p}
}

// parkAfter is how long a session's reader waits for the client's next
// message before it parks. A client that just sent one often sends the
// next within a round trip (a request and its answer, an echo, a chat),
// and a reader waiting in the runtime's poller takes it with no system
// call to watch the socket, no goroutine to start and no read buffer to
// make again, which parking costs each message. An idle client holds the
// goroutine for this long after each message it sends (its pong every
// relay.PingInterval, say), so the share of idle sessions holding one at
// any time is parkAfter over the ping interval: about one in a thousand.
const parkAfter = 20 * time.Millisecond

func (t *parkingWS) Park(resume func()) bool {
	if t.br.Buffered() > 0 || t.Splitting() {
		return false
	}
	t.conn.SetReadDeadline(time.Now().Add(parkAfter))
	_, err := t.br.Peek(1)
	t.conn.SetReadDeadline(time.Time{})
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false // input, or an error for the reader to find
	}
	if readwait.Pending(t.fd) {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || t.p.Wait(t.fd, t.wake) != nil {
		return false
	}
	t.resume = resume
	// The library holds br by pointer, so the reader is emptied and
	// refilled in place; nothing reads it until resume runs.
	*t.br = bufio.Reader{}
	return true
}

// unpark takes the session's resume and gives br a buffer again; t.mu is
// held.
func (t *parkingWS) unpark() func() {
	r := t.resume
	t.resume = nil
	if r != nil {
		*t.br = *bufio.NewReaderSize(t.conn, idleReadBuffer)
	}
	return r
}

func (t *parkingWS) wake() {
	t.mu.Lock()
	r := t.unpark()
	t.mu.Unlock()
	if r != nil {
		r()
	}
}

// Close closes the connection; a parked session resumes to find it closed.
func (t *parkingWS) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	r := t.unpark()
	t.p.Cancel(t.fd) // before the descriptor closes, and may be reused
	t.mu.Unlock()
	err := t.WebSocketFramed.Close()
	if r != nil {
		go r()
	}
	return err
}
