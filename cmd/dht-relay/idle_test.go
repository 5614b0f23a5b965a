package main

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/dhtrelay/dht-relay/internal/interop"
	"github.com/dhtrelay/dht-relay/noise"
	"github.com/dhtrelay/dht-relay/protomux"
	"github.com/dhtrelay/dht-relay/relay"
)

// idleClient is a relay session over WebSocket whose client reads only
// when asked, on the caller's goroutine, so that it adds no goroutine.
type idleClient struct {
	c      *websocket.Conn
	f      *relay.WebSocketFramed
	mux    *protomux.Mux
	ch     *protomux.Channel
	ponged bool
	// onMessage, if set, sees every message read.
	onMessage func(typ uint64, payload []byte)
}

// The client's side of the relay channel is bare protomux, since the
// relay package's channel answers pings and pongs itself.
func (ic *idleClient) send(m relay.Message) { ic.ch.Send(uint64(m.Type()), m.AppendPayload(nil)) }

func openIdleClient(t *testing.T, ws string) *idleClient {
	t.Helper()
	ic, err := dialIdleClient(ws)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ic.c.Close() })
	return ic
}

// dialIdleClient opens a custodial session and waits for a pong.
func dialIdleClient(ws string) (*idleClient, error) {
	return dialIdleClientWith(websocket.DefaultDialer, ws, nil)
}

// dialIdleClientWith is dialIdleClient through d, sending header.
func dialIdleClientWith(d *websocket.Dialer, ws string, header http.Header) (*idleClient, error) {
	c, _, err := d.Dial(ws, header)
	if err != nil {
		return nil, err
	}
	ic := &idleClient{c: c, f: relay.NewWebSocketFramed(c, 1<<20, 10*time.Second)}
	ic.mux = protomux.New(ic.f)
	pong := uint64((&relay.Pong{}).Type())
	ic.ch = ic.mux.CreateChannel(relay.Protocol, nil, protomux.Handlers{
		OnMessage: func(typ uint64, p []byte) {
			if typ == pong {
				ic.ponged = true
			}
			if ic.onMessage != nil {
				ic.onMessage(typ, p)
			}
		},
	})
	if err := ic.ch.Open(nil); err != nil {
		c.Close()
		return nil, err
	}
	kp, _ := noise.GenerateKeyPair(rand.Reader)
	ic.send(&relay.Handshake{Custodial: true, PublicKey: kp.Public, SecretKey: kp.Secret})
	if err := ic.tryPing(); err != nil {
		c.Close()
		return nil, err
	}
	return ic, nil
}

// ping sends a ping and reads until the pong.
func (ic *idleClient) ping(t *testing.T) {
	t.Helper()
	if err := ic.tryPing(); err != nil {
		t.Fatal(err)
	}
}

func (ic *idleClient) tryPing() error {
	ic.ponged = false
	ic.send(&relay.Ping{})
	ic.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for !ic.ponged {
		frame, err := ic.f.ReadMessage()
		if err == nil {
			err = ic.mux.Receive(frame)
		}
		if err != nil {
			return fmt.Errorf("no pong: %w", err)
		}
	}
	return nil
}

// An idle WebSocket session holds no goroutine: between client messages
// its reader parks and the edge's poller wakes it on input.
func TestIdleSessionsHoldNoGoroutine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sessions park on Linux only")
	}
	interop.Require(t)
	_, boot := interop.StartTestnet(t)
	// All the sessions come from one address.
	r := startRelay(t, "--bootstrap", boot, "--allow-addresses", "127.0.0.1")
	openIdleClient(t, r.ws) // what every session shares exists from here on
	const n = 200
	before := runtime.NumGoroutine()
	clients := make([]*idleClient, n)
	for i := range clients {
		clients[i] = openIdleClient(t, r.ws)
	}
	// Opening a session at its worker takes a goroutine for a moment.
	deadline := time.Now().Add(20 * time.Second)
	grew := runtime.NumGoroutine() - before
	for grew >= n/4 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		grew = runtime.NumGoroutine() - before
	}
	if grew >= n/4 {
		t.Fatalf("%d idle sessions hold %d goroutines", n, grew)
	}
	t.Logf("%d idle sessions: %d goroutines more", n, grew)
	// Parked sessions wake for their clients' next messages.
	for _, ic := range clients[:10] {
		ic.ping(t)
	}
}
