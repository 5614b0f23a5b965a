package relay

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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

// TestChannelKeepalive: the relay side's pings keep a client side alive
// past its alive timeout, and are answered.
func TestChannelKeepalive(t *testing.T) {
	a, b := wsPair(t)
	errs := make(chan error, 4)
	onErr := func(e error) { errs <- e }
	muxA, muxB := protomux.New(a), protomux.New(b)
	relaySide, err := OpenChannel(muxA, ChannelConfig{Ping: true, PingInterval: 20 * time.Millisecond, AliveTimeout: time.Second, OnError: onErr})
	if err != nil {
		t.Fatal(err)
	}
	client, err := OpenChannel(muxB, ChannelConfig{AliveTimeout: 200 * time.Millisecond, OnError: onErr})
	if err != nil {
		t.Fatal(err)
	}
	go muxA.Run()
	go muxB.Run()
	time.Sleep(600 * time.Millisecond)
	select {
	case e := <-errs:
		t.Fatalf("a side gave up: %v", e)
	default:
	}
	if client.LastSeen().IsZero() || relaySide.LastSeen().IsZero() {
		t.Fatal("no pings or pongs seen")
	}
}

// TestChannelDeadPeer: a peer that never speaks is given up on.
func TestChannelDeadPeer(t *testing.T) {
	a, _ := wsPair(t)
	errs := make(chan error, 1)
	muxA := protomux.New(a)
	if _, err := OpenChannel(muxA, ChannelConfig{AliveTimeout: 100 * time.Millisecond, OnError: func(e error) { errs <- e }}); err != nil {
		t.Fatal(err)
	}
	go muxA.Run()
	select {
	case e := <-errs:
		if !errors.Is(e, ErrNotAlive) {
			t.Fatalf("got %v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a silent peer was never given up on")
	}
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
