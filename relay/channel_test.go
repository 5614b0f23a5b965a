package relay

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"

	"github.com/dhtrelay/dht-relay/protomux"
)

// wsPair returns both ends of a loopback WebSocket as Framed.
func wsPair(t *testing.T) (*WebSocketFramed, *WebSocketFramed) {
	t.Helper()
	server := make(chan *WebSocketFramed, 1)
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err == nil {
			server <- NewServerWebSocketFramed(c, 1<<20, 10*time.Second, NewReadBuffers())
		}
	}))
	t.Cleanup(srv.Close)
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	a := NewWebSocketFramed(c, 1<<20, 10*time.Second)
	b := <-server
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// pipeFramed is one end of an in-memory framed pipe, for tests that run
// on synctest's clock, where a socket's wait would not count as blocked.
type pipeFramed struct {
	in, out chan []byte
	done    chan struct{}
	once    sync.Once
}

func framedPipe() (*pipeFramed, *pipeFramed) {
	ab, ba := make(chan []byte, 64), make(chan []byte, 64)
	return &pipeFramed{in: ba, out: ab, done: make(chan struct{})}, &pipeFramed{in: ab, out: ba, done: make(chan struct{})}
}

func (p *pipeFramed) ReadMessage() ([]byte, error) {
	select {
	case m := <-p.in:
		return m, nil
	case <-p.done:
		return nil, io.EOF
	}
}

func (p *pipeFramed) WriteMessage(b []byte) error {
	select {
	case p.out <- slices.Clone(b):
		return nil
	case <-p.done:
		return io.ErrClosedPipe
	}
}

// Close ends this end: its reader sees EOF; the other end hears nothing
// more from it.
func (p *pipeFramed) Close() { p.once.Do(func() { close(p.done) }) }

// TestChannelKeepalive: at the protocol's timings, the relay side's pings
// keep a client that never pings alive for as long as it answers, and the
// relay gives up on it AliveTimeout after its last pong.
func TestChannelKeepalive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := framedPipe()
		relayErrs, clientErrs := make(chan error, 4), make(chan error, 4)
		muxA, muxB := protomux.New(a), protomux.New(b)
		relaySide, err := OpenChannel(muxA, ChannelConfig{Ping: true, OnError: func(e error) { relayErrs <- e }})
		if err != nil {
			t.Fatal(err)
		}
		client, err := OpenChannel(muxB, ChannelConfig{OnError: func(e error) { clientErrs <- e }})
		if err != nil {
			t.Fatal(err)
		}
		go muxA.Run()
		go muxB.Run()
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		select {
		case e := <-relayErrs:
			t.Fatalf("the relay gave up on an answering client: %v", e)
		case e := <-clientErrs:
			t.Fatalf("the client gave up on a pinging relay: %v", e)
		default:
		}
		if since := time.Since(client.LastSeen()); since >= PingInterval {
			t.Fatalf("the client last heard a ping %v ago", since)
		}
		lastPong := relaySide.LastSeen()
		b.Close() // the client goes silent
		e := <-relayErrs
		if !errors.Is(e, ErrNotAlive) {
			t.Fatalf("the relay gave up with %v", e)
		}
		if after := time.Since(lastPong); after < AliveTimeout || after > AliveTimeout+time.Second {
			t.Fatalf("the relay gave up %v after the last pong, not %v", after, AliveTimeout)
		}
		a.Close()
	})
}

// TestChannelDeadPeer: a peer that never speaks is given up on
// AliveTimeout after the channel opened.
func TestChannelDeadPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := framedPipe()
		errs := make(chan error, 1)
		muxA := protomux.New(a)
		start := time.Now()
		if _, err := OpenChannel(muxA, ChannelConfig{OnError: func(e error) { errs <- e }}); err != nil {
			t.Fatal(err)
		}
		go muxA.Run()
		e := <-errs
		if !errors.Is(e, ErrNotAlive) {
			t.Fatalf("got %v", e)
		}
		if after := time.Since(start); after != AliveTimeout {
			t.Fatalf("given up on after %v, not %v", after, AliveTimeout)
		}
		a.Close()
		b.Close()
	})
}

// TestChannelBadMessage: an undecodable message is reported, for the
// session to close with a reason.
func TestChannelBadMessage(t *testing.T) {
	a, b := wsPair(t)
	errs := make(chan error, 1)
	muxA := protomux.New(a)
	if _, err := OpenChannel(muxA, ChannelConfig{OnError: func(e error) { errs <- e }}); err != nil {
		t.Fatal(err)
	}
	go muxA.Run()
	muxB := protomux.New(b)
	ch := muxB.CreateChannel(Protocol, nil, protomux.Handlers{})
	ch.Open(nil)
	go muxB.Run()
	ch.Send(uint64(TypeConnect), []byte{1, 2, 3}) // truncated
	select {
	case e := <-errs:
		if e == nil || errors.Is(e, ErrNotAlive) {
			t.Fatalf("got %v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a truncated message went unreported")
	}
}

// TestChannelFailsOnce: a channel reports one failure, the first, and none
// once it has closed, as when its timer fires while it closes.
func TestChannelFailsOnce(t *testing.T) {
	a, _ := wsPair(t)
	errs := make(chan error, 4)
	c, err := OpenChannel(protomux.New(a), ChannelConfig{AliveTimeout: time.Hour, OnError: func(e error) { errs <- e }})
	if err != nil {
		t.Fatal(err)
	}
	first := errors.New("first")
	c.fail(first)
	c.fail(ErrNotAlive)
	if e := <-errs; e != first {
		t.Fatalf("reported %v", e)
	}
	closed, err := OpenChannel(protomux.New(a), ChannelConfig{AliveTimeout: time.Hour, OnError: func(e error) { errs <- e }})
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	closed.fail(ErrNotAlive)
	select {
	case e := <-errs:
		t.Fatalf("reported %v after the first, or after closing", e)
	case <-time.After(100 * time.Millisecond):
	}
}
