package main

import (
	"context"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/interop"
	"github.com/dhtrelay/dht-relay/relay"
)

// TestServerHandover: a client that drops its connection leaves its
// server announced; a session with only the public key cannot take it
// over; the client reconnecting with its key gets the same server back at
// once, and a JS peer connects to it.
func TestServerHandover(t *testing.T) {
	interop.Require(t)
	peer, boot := startTestnet(t)
	rel := startRelay(t, "--bootstrap", boot)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dial := func(custodial bool) *relay.Client {
		tr, err := relay.DialWebSocket(ctx, rel.ws)
		if err != nil {
			t.Fatal(err)
		}
		c, err := relay.NewClient(tr, relay.ClientConfig{KeyPair: keyOf(randomSeed()), Custodial: custodial})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	seed := randomSeed()
	first := dial(true)
	if _, err := first.Listen(ctx, keyOf(seed), nil); err != nil {
		t.Fatal(err)
	}
	first.Close() // the connection drops without closing the server

	// Someone with only the public key (non-custodial, no proof) is refused.
	thief := dial(false)
	if srv, err := thief.Listen(ctx, keyOf(seed), nil); err == nil {
		select {
		case <-srv.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("a session without the key took over the server")
		}
	}

	again := dial(true)
	start := time.Now()
	var srv *relay.Server
	// Until the worker has seen the first session end, the key is in use
	// and the listen refused (listening, then closed at once).
	for srv == nil && time.Since(start) < 10*time.Second {
		s, err := again.Listen(ctx, keyOf(seed), nil)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-s.Done():
		case <-time.After(300 * time.Millisecond):
			srv = s
		}
	}
	if srv == nil {
		t.Fatal("the owner could not take its server back")
	}
	t.Logf("server back %v after the reconnect", time.Since(start).Round(time.Millisecond))
	go func() {
		for {
			c, err := srv.Accept(context.Background())
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if err != nil {
						c.Close()
						return
					}
					c.Write(buf[:n])
				}
			}()
		}
	}()
	requireOK(t, "JS echo through the handed-over server", peer.do("echo", publicKey(seed), "65536"))
	select {
	case <-srv.Done():
		t.Fatal("the handed-over server closed")
	default:
	}
}
