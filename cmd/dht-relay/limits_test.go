package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/interop"
	"github.com/dhtrelay/dht-relay/relay"
)

// TestLimits: a session past its stream or server limit has that
// operation fail with a clear reason while its other streams, and other
// sessions, keep working; an edge past its session limit refuses new
// clients only.
func TestLimits(t *testing.T) {
	interop.Require(t)
	peer, boot := interop.StartTestnet(t)
	rel := startRelay(t, "--bootstrap", boot, "--max-streams", "2", "--max-servers", "1", "--max-sessions", "2")
	seed := interop.RandomSeed()
	interop.RequireOK(t, "js listen", peer.Do("listen", seed))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dial := func() *relay.Client {
		tr, err := relay.DialWebSocket(ctx, rel.ws)
		if err != nil {
			t.Fatal(err)
		}
		c, err := relay.NewClient(tr, relay.ClientConfig{KeyPair: keyOf(interop.RandomSeed()), Custodial: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := dial(), dial()
	key := keyOf(seed).Public
	c1, err := a.Connect(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := a.Connect(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Connect(ctx, key); err == nil || !strings.Contains(err.Error(), "too many streams") {
		t.Fatalf("third stream: %v", err)
	}
	for _, c := range []*relay.ClientConn{c1, c2} {
		if _, err := c.Write([]byte("still here")); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 10)
		if _, err := c.Read(got); err != nil {
			t.Fatalf("a stream within the limit stopped: %v", err)
		}
	}
	if err := echoOver(t, b, key, 1<<20); err != nil {
		t.Fatalf("another session: %v", err)
	}
	if _, err := a.Listen(ctx, keyOf(interop.RandomSeed()), nil); err != nil {
		t.Fatal(err)
	}
	if srv, err := a.Listen(ctx, keyOf(interop.RandomSeed()), nil); err == nil {
		select {
		case <-srv.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("a second server past the limit of one stayed open")
		}
	}
	// A third session is refused at the edge; the first two live on.
	tr, err := relay.DialWebSocket(ctx, rel.ws)
	if err == nil {
		// The edge closes the connection at once; the client may see it
		// as soon as it sends its handshake, or just after.
		if c, err := relay.NewClient(tr, relay.ClientConfig{KeyPair: keyOf(interop.RandomSeed()), Custodial: true}); err == nil {
			select {
			case <-c.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("a session past the edge's limit stayed open")
			}
		}
	}
	if err := echoOver(t, b, key, 1<<10); err != nil {
		t.Fatalf("a session within the limit after a refusal: %v", err)
	}
}

// TestPendingConnectsCountAsStreams: connects still waiting for their DHT
// query count against the stream limit, so a session cannot pile up
// connects past it.
func TestPendingConnectsCountAsStreams(t *testing.T) {
	interop.Require(t)
	// A DHT that answers nothing keeps every connect waiting.
	rel := startRelay(t, "--bootstrap", silentBootstrap(t), "--max-streams", "2")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tr, err := relay.DialWebSocket(ctx, rel.ws)
	if err != nil {
		t.Fatal(err)
	}
	c, err := relay.NewClient(tr, relay.ClientConfig{KeyPair: keyOf(interop.RandomSeed()), Custodial: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 5
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := c.Connect(ctx, keyOf(interop.RandomSeed()).Public)
			errs <- err
		}()
	}
	refused := 0
	for range n {
		err := <-errs
		if err == nil {
			t.Fatal("a connect through a DHT that answers nothing succeeded")
		}
		if strings.Contains(err.Error(), "too many streams") {
			refused++
		}
	}
	if refused != n-2 {
		t.Fatalf("%d of %d connects refused with the limit at 2 and every connect pending", refused, n)
	}
}

// TestStreamCaps: with caps set, a stream that relayed its bytes, or
// lived its time, ends with a reason the client sees; within them, and
// paced by a session byte rate, streams work.
func TestStreamCaps(t *testing.T) {
	interop.Require(t)
	peer, boot := interop.StartTestnet(t)
	seed := interop.RandomSeed()
	interop.RequireOK(t, "js listen", peer.Do("listen", seed))
	key := keyOf(seed).Public
	client := func(rel *relayProc) *relay.Client {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		tr, err := relay.DialWebSocket(ctx, rel.ws)
		if err != nil {
			t.Fatal(err)
		}
		c, err := relay.NewClient(tr, relay.ClientConfig{KeyPair: keyOf(interop.RandomSeed()), Custodial: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	rel := startRelay(t, "--bootstrap", boot, "--stream-bytes", "300000", "--session-byte-rate", "4000000")
	c := client(rel)
	if err := echoOver(t, c, key, 100000); err != nil {
		t.Fatalf("an echo within the stream's bytes: %v", err)
	}
	if err := echoOver(t, c, key, 1<<20); err == nil || !strings.Contains(err.Error(), "byte limit") {
		t.Fatalf("an echo past the stream's bytes: %v", err)
	}

	rel = startRelay(t, "--bootstrap", boot, "--stream-duration", "1s")
	c = client(rel)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := c.Connect(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Read(make([]byte, 1)); err == nil || !strings.Contains(err.Error(), "time limit") {
		t.Fatalf("a stream past its time: %v", err)
	}
}
