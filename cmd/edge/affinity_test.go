package main

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/await"
	"github.com/dhtrelay/dht-relay/internal/redistest"
	"github.com/dhtrelay/dht-relay/internal/routing"
	"github.com/dhtrelay/dht-relay/noise"
	"github.com/dhtrelay/dht-relay/relay"
)

// TestAffinityAcrossEdges: a client lands on a worker through one edge;
// after a third worker joins that hashing alone would now choose, the same
// client reconnecting through the other edge lands on its first worker
// again, because Redis remembers it.
func TestAffinityAcrossEdges(t *testing.T) {
	// The workers join a DHT of their own: placement needs no peers.
	c := newCluster(t, freePort(t), redistest.URL(t))
	c.worker("w1")
	c.worker("w2")
	wss := []string{c.edge("e1", 2), c.edge("e2", 2)}

	var kp noise.KeyPair
	for {
		kp, _ = noise.GenerateKeyPair(rand.Reader)
		if routing.Pick(kp.Public[:], []string{"w1", "w2"}) == "w1" && routing.Pick(kp.Public[:], []string{"w1", "w2", "w3"}) == "w3" {
			break
		}
	}
	connect := func(ws string) *relay.Client {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		tr, err := relay.DialWebSocket(ctx, ws)
		if err != nil {
			t.Fatal(err)
		}
		c, err := relay.NewClient(tr, relay.ClientConfig{KeyPair: kp, Custodial: true})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	sessions := func(w string) string { return metric(c.metrics[w], "dhtrelay_sessions") }
	client := connect(wss[0])
	await.True(t, "the session on w1", func() bool { return sessions("w1") == "1" })
	client.Close()
	await.True(t, "the session to end", func() bool { return sessions("w1") == "0" })

	c.worker("w3")
	c.waitWorkers("e1", 3)
	c.waitWorkers("e2", 3)
	client = connect(wss[1])
	defer client.Close()
	await.True(t, "the reconnect on w1", func() bool { return sessions("w1") == "1" })
	if s := sessions("w3"); s != "0" {
		t.Fatalf("w3 holds %s sessions", s)
	}
}
