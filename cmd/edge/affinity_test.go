package main

import (
	"context"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/redistest"
	"github.com/dhtrelay/dht-relay/internal/routing"
	"github.com/dhtrelay/dht-relay/noise"
	"github.com/dhtrelay/dht-relay/relay"
)

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// workerSessions reads a worker's session gauge from its metrics address.
func workerSessions(addr string) string {
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "dhtrelay_sessions") {
			return l[strings.LastIndexByte(l, ' ')+1:]
		}
	}
	return "?"
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAffinityAcrossEdges: a client lands on a worker through one edge;
// after a third worker joins that hashing alone would now choose, the same
// client reconnecting through the other edge lands on its first worker
// again, because Redis remembers it.
func TestAffinityAcrossEdges(t *testing.T) {
	redis := redistest.URL(t)
	natsURL := startNATS(t)
	bin := buildCommands(t)
	// The workers join a DHT of their own: placement needs no peers.
	boot := freePort(t)
	metrics := map[string]string{}
	startWorker := func(id string) {
		metrics[id] = freePort(t)
		startProcess(t, filepath.Join(bin, "dhtworker"), "--nats", natsURL, "--id", id, "--bootstrap", boot, "--dht-host", "127.0.0.1", "--metrics", metrics[id], "--log-level", "error")
	}
	startWorker("w1")
	startWorker("w2")
	var wss []string
	for _, id := range []string{"e1", "e2"} {
		_, ready := startProcess(t, filepath.Join(bin, "edge"), "--nats", natsURL, "--redis", redis, "--id", id, "--host", "127.0.0.1", "--port", "0", "--log-level", "error")
		wss = append(wss, ready[strings.Index(ready, "ws://"):])
	}

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
	// Both edges must know both workers before the first placement.
	time.Sleep(routing.LostAfter)
	c := connect(wss[0])
	waitFor(t, "the session on w1", func() bool { return workerSessions(metrics["w1"]) == "1" })
	c.Close()
	waitFor(t, "the session to end", func() bool { return workerSessions(metrics["w1"]) == "0" })

	startWorker("w3")
	time.Sleep(routing.LostAfter) // the edges hear of w3
	c = connect(wss[1])
	defer c.Close()
	waitFor(t, "the reconnect on w1", func() bool {
		return workerSessions(metrics["w1"]) == "1"
	})
	if s := workerSessions(metrics["w3"]); s != "0" {
		t.Fatalf("w3 holds %s sessions", s)
	}
}
