package relay

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/dhtrelay/dht-relay/internal/await"
	"github.com/dhtrelay/dht-relay/internal/interop"
	"github.com/dhtrelay/dht-relay/noise"
	"github.com/dhtrelay/dht-relay/protomux"
	"github.com/dhtrelay/dht-relay/secretstream"
)

// serveChannel runs the relay channel over f and reports the messages.
func serveChannel(t *testing.T, f protomux.Framed) (chan Message, *Channel) {
	msgs := make(chan Message, 16)
	mux := protomux.New(f)
	ch, err := OpenChannel(mux, ChannelConfig{OnMessage: func(m Message) { msgs <- m }, OnError: func(error) {}})
	if err != nil {
		t.Error(err)
		return nil, nil
	}
	go mux.Run()
	return msgs, ch
}

func expectHandshake(t *testing.T, msgs chan Message, kp noise.KeyPair) {
	t.Helper()
	select {
	case m := <-msgs:
		hs, ok := m.(*Handshake)
		if !ok {
			t.Fatalf("first message %v", m.Type())
		}
		if !hs.Custodial || hs.PublicKey != kp.Public || hs.SecretKey != kp.Secret {
			t.Fatal("handshake does not carry the client's keys")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no handshake from the JS client")
	}
}

// TestUnchangedJSClientOverWebSocket: the npm client opens the relay
// channel over a WebSocket to Go and sends its handshake; a ping from Go is
// answered (the channel keeps the client alive).
func TestUnchangedJSClientOverWebSocket(t *testing.T) {
	var seed [32]byte
	rand.Read(seed[:])
	kp := noise.KeyPairFromSeed(seed)
	type session struct {
		msgs chan Message
		ch   *Channel
		ws   *WebSocketFramed
	}
	sessions := make(chan session, 1)
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		f := NewServerWebSocketFramed(c, 1<<20, 10*time.Second, NewReadBuffers())
		msgs, ch := serveChannel(t, f)
		sessions <- session{msgs, ch, f}
	}))
	defer srv.Close()
	js := interop.Start(t, "relay-client.js", "ws", "ws"+strings.TrimPrefix(srv.URL, "http"), hex.EncodeToString(seed[:]))
	s := <-sessions
	expectHandshake(t, s.msgs, kp)
	if line, err := js.ReadLineWithin(10 * time.Second); err != nil || line != `{"open":true}` {
		t.Fatalf("JS: %q %v", line, err)
	}
	// The client answers a ping with a pong, which counts as a sign of life.
	before := s.ch.LastSeen()
	time.Sleep(10 * time.Millisecond)
	if err := s.ch.Send(&Ping{}); err != nil {
		t.Fatal(err)
	}
	await.Within(t, 5*time.Second, "a pong", func() bool { return s.ch.LastSeen().After(before) })
	// The relay going away closes the client's stream.
	s.ws.Close()
	if line, err := js.ReadLineWithin(10 * time.Second); err != nil || line != `{"closed":true}` {
		t.Fatalf("after the relay closed: %q %v", line, err)
	}
}

// TestUnchangedJSClientOverTCP: the same over the TCP transport, a
// SecretStream over the socket.
func TestUnchangedJSClientOverTCP(t *testing.T) {
	var seed [32]byte
	rand.Read(seed[:])
	kp := noise.KeyPairFromSeed(seed)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	js := interop.Start(t, "relay-client.js", "tcp", ln.Addr().String(), hex.EncodeToString(seed[:]))
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	relayKP, _ := noise.GenerateKeyPair(rand.Reader)
	ss, err := secretstream.New(conn, false, secretstream.Config{KeyPair: relayKP})
	if err != nil {
		t.Fatal(err)
	}
	msgs, _ := serveChannel(t, ss)
	expectHandshake(t, msgs, kp)
	if line, err := js.ReadLineWithin(10 * time.Second); err != nil || line != `{"open":true}` {
		t.Fatalf("JS: %q %v", line, err)
	}
}

// TestClientReadsWholeMessages: the client's transport, which reads through
// pooled buffers, returns each message whole and in memory of its own,
// for sizes below, at and above the largest buffer the pool keeps.
func TestClientReadsWholeMessages(t *testing.T) {
	sizes := []int{0, 1, 100, 64 << 10, 64<<10 + 1, 300 << 10, maxReadBuffer + 1, 10}
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for i, n := range sizes {
			c.WriteMessage(websocket.BinaryMessage, bytes.Repeat([]byte{byte(i + 1)}, n))
		}
		c.WriteMessage(websocket.TextMessage, []byte("no"))
		c.ReadMessage() // until the client closes
	}))
	defer srv.Close()
	tr, err := DialWebSocket(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	f := tr.(*WebSocketFramed)
	var got [][]byte
	for range sizes {
		m, err := f.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	// Checked after all are read: a message must not share the scratch
	// that later reads overwrite.
	for i, n := range sizes {
		if !bytes.Equal(got[i], bytes.Repeat([]byte{byte(i + 1)}, n)) {
			t.Fatalf("message %d of %d bytes came back as %d bytes", i, n, len(got[i]))
		}
	}
	if _, err := f.ReadMessage(); !errors.Is(err, ErrTextMessage) {
		t.Fatalf("a text message read as %v", err)
	}
}

// TestServerWritesFrames: the server side, which writes its frames itself,
// sends each message whole as one unfragmented frame, at every length
// encoding (7-bit, 16-bit, 64-bit) and gathered from several parts, over
// a plain connection (gathered by writev) and over TLS (copied together);
// a ping in between is answered with its pong, and the messages around it
// stay whole.
func TestServerWritesFrames(t *testing.T) {
	for _, secure := range []bool{false, true} {
		serverWritesFrames(t, secure)
	}
}

func serverWritesFrames(t *testing.T, secure bool) {
	sizes := []int{0, 1, 125, 126, 127, 0xffff, 0x10000, 300 << 10}
	up := websocket.Upgrader{}
	done := make(chan error, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		f := NewServerWebSocketFramed(c, 1<<20, 10*time.Second, NewReadBuffers())
		defer f.Close()
		read := make(chan struct{})
		defer func() { <-read }() // until the client closes
		// The library answers pings while reading.
		go func() {
			defer close(read)
			for {
				if _, err := f.ReadMessage(); err != nil {
					return
				}
			}
		}()
		for i, n := range sizes {
			m := bytes.Repeat([]byte{byte(i + 1)}, n)
			if err := f.WriteMessage(m); err != nil {
				done <- err
				return
			}
			// The same message again, cut into three parts.
			if err := f.WriteMessageVec([][]byte{m[:n/3], m[n/3 : n/2], m[n/2:]}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}))
	dialer := *websocket.DefaultDialer
	if secure {
		srv.StartTLS()
		dialer.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig
	} else {
		srv.Start()
	}
	defer srv.Close()
	c, _, err := dialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pong := make(chan string, 1)
	c.SetPongHandler(func(data string) error { pong <- data; return nil })
	if err := c.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	for i, n := range sizes {
		for copyNo := range 2 {
			typ, m, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("TLS %v, message %d (%d bytes), copy %d: %v", secure, i, n, copyNo, err)
			}
			if typ != websocket.BinaryMessage || !bytes.Equal(m, bytes.Repeat([]byte{byte(i + 1)}, n)) {
				t.Fatalf("TLS %v, message %d (%d bytes), copy %d: type %d, %d bytes", secure, i, n, copyNo, typ, len(m))
			}
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The pong may come after the last message: the library hands it to
	// the handler only while reading.
	go func() {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		c.ReadMessage()
	}()
	select {
	case p := <-pong:
		if p != "are you there" {
			t.Fatalf("pong %q", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pong")
	}
}
