package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/await"
	"github.com/dhtrelay/dht-relay/internal/interop"
	"github.com/dhtrelay/dht-relay/internal/loadgen"
	"github.com/dhtrelay/dht-relay/internal/natstest"
	"github.com/dhtrelay/dht-relay/internal/redistest"
	"github.com/dhtrelay/dht-relay/noise"
	"github.com/dhtrelay/dht-relay/relay"
)

// TestCluster: NATS, Redis, two workers and two edges as separate
// processes on loopback, joined to a JS testnet: the JS client matrix of
// the relay (interop.ClientMatrix) passes through either edge.
func TestCluster(t *testing.T) {
	interop.Require(t)
	peer, boot := interop.StartTestnet(t)
	c := newCluster(t, boot, redistest.URL(t))
	c.worker("w1")
	c.worker("w2")
	c.edge("e1", 2)
	c.edge("e2", 2)
	for _, e := range []string{"e1", "e2"} {
		t.Run(e, func(t *testing.T) { interop.ClientMatrix(t, peer, boot, c.ws[e], c.tcp[e]) })
	}
}

// dialClient connects a Go relay client to ws with key pair kp.
func dialClient(t *testing.T, ctx context.Context, ws string, kp noise.KeyPair, custodial bool) *relay.Client {
	t.Helper()
	tr, err := relay.DialWebSocket(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	c, err := relay.NewClient(tr, relay.ClientConfig{KeyPair: kp, Custodial: custodial})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// echoServer echoes every connection srv accepts until it closes.
func echoServer(srv *relay.Server) {
	for {
		c, err := srv.Accept(context.Background())
		if err != nil {
			return
		}
		go func() {
			io.Copy(c, c)
			c.Close()
		}()
	}
}

// TestEdgeKilled: clients with relayed servers (custodial and not) on one
// edge; kill -9 that edge. Each client reconnects through the other edge
// with its key, takes its server back, and a JS peer reaches the server
// again within 5 s of the reconnect.
func TestEdgeKilled(t *testing.T) {
	interop.Require(t)
	peer, boot := interop.StartTestnet(t)
	c := newCluster(t, boot, redistest.URL(t))
	c.worker("w1")
	c.worker("w2")
	c.edge("e1", 2)
	c.edge("e2", 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	type owner struct {
		custodial bool
		seed      string
		client    *relay.Client
	}
	var owners []*owner
	for _, custodial := range []bool{true, false} {
		o := &owner{custodial: custodial, seed: interop.RandomSeed()}
		kp := keyOf(o.seed)
		o.client = dialClient(t, ctx, c.ws["e1"], kp, custodial)
		srv, err := o.client.Listen(ctx, kp, nil)
		if err != nil {
			t.Fatal(err)
		}
		go echoServer(srv)
		interop.RequireOK(t, "JS echo before the kill", peer.Do("echo", interop.PublicKey(o.seed), "65536"))
		owners = append(owners, o)
	}

	c.kill("e1")
	for _, o := range owners {
		select {
		case <-o.client.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("the client did not see its edge die")
		}
	}
	for _, o := range owners {
		kp := keyOf(o.seed)
		reconnect := time.Now()
		client := dialClient(t, ctx, c.ws["e2"], kp, o.custodial)
		var srv *relay.Server
		// Until the worker learns that e1 is dead, the key's server is
		// still its old session's: the listen is refused.
		for srv == nil && time.Since(reconnect) < 5*time.Second {
			s, err := client.Listen(ctx, kp, nil)
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			select {
			case <-s.Done():
				time.Sleep(100 * time.Millisecond)
			case <-time.After(200 * time.Millisecond):
				srv = s
			}
		}
		if srv == nil {
			t.Fatalf("custodial %v: the server was not taken back within 5 s of the reconnect", o.custodial)
		}
		go echoServer(srv)
		interop.RequireOK(t, "JS echo after the reconnect", peer.Do("echo", interop.PublicKey(o.seed), "65536"))
		took := time.Since(reconnect)
		t.Logf("custodial %v: server reachable %v after the reconnect", o.custodial, took.Round(time.Millisecond))
		if took > 5*time.Second {
			t.Errorf("custodial %v: server reachable only %v after the reconnect", o.custodial, took)
		}
	}
}

// TestRedisStopped: with Redis killed under a running cluster, clients
// still connect and echo (placement by hashing alone) and the edge counts
// the fallbacks.
func TestRedisStopped(t *testing.T) {
	interop.Require(t)
	redisURL, stopRedis := redistest.Start(t)
	boot, echoKey := startJSEcho(t, interop.RandomSeed())
	c := newCluster(t, boot, redisURL)
	c.worker("w1")
	c.worker("w2")
	c.edge("e1", 2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	echo := func(what string) {
		t.Helper()
		kp, _ := noise.GenerateKeyPair(rand.Reader)
		client := dialClient(t, ctx, c.ws["e1"], kp, true)
		conn, err := client.Connect(ctx, echoKey)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		data := make([]byte, 256<<10)
		rand.Read(data)
		go conn.Write(data)
		back := make([]byte, len(data))
		if _, err := io.ReadFull(conn, back); err != nil || string(back) != string(data) {
			t.Fatalf("%s: echo: %v", what, err)
		}
		client.Close()
	}
	echo("with Redis")
	if f := metric(c.metrics["e1"], "dhtrelay_affinity_fallbacks_total"); f != "0" {
		t.Fatalf("fallbacks with Redis up: %s", f)
	}
	stopRedis()
	for i := range 3 {
		echo(fmt.Sprintf("client %d without Redis", i))
	}
	f, _ := strconv.Atoi(metric(c.metrics["e1"], "dhtrelay_affinity_fallbacks_total"))
	if f < 3 {
		t.Fatalf("%d fallbacks counted for 3 placements without Redis", f)
	}
}

func keyOf(seedHex string) noise.KeyPair {
	var seed [32]byte
	hex.Decode(seed[:], []byte(seedHex))
	return noise.KeyPairFromSeed(seed)
}

// TestNATSRestart: NATS goes away for two seconds under a running
// cluster. A stream open across the outage either carries on intact or
// ends with an error, never with data lost, changed or stalled; edge and
// worker reconnect by themselves, and new clients connect and echo once
// NATS is back.
func TestNATSRestart(t *testing.T) {
	interop.Require(t)
	boot, echoKey := startJSEcho(t, interop.RandomSeed())
	c := newCluster(t, boot, "")
	c.worker("w1")
	c.edge("e1", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	kp, _ := noise.GenerateKeyPair(rand.Reader)
	client := dialClient(t, ctx, c.ws["e1"], kp, true)
	streamAcross(t, ctx, client, echoKey, func() {
		// Readiness follows NATS: not ready while it is away.
		notReady := make(chan bool, 1)
		go func() {
			time.Sleep(time.Second)
			notReady <- readyz(c.metrics["e1"]) == http.StatusServiceUnavailable && readyz(c.metrics["w1"]) == http.StatusServiceUnavailable
		}()
		c.restartNATS(2 * time.Second)
		if !<-notReady {
			t.Error("edge or worker ready while NATS was away")
		}
	})
	restarted := time.Now()

	for {
		kp, _ := noise.GenerateKeyPair(rand.Reader)
		fresh := dialClient(t, ctx, c.ws["e1"], kp, true)
		if err := echoOnce(ctx, fresh, echoKey); err == nil {
			t.Logf("a new client echoes %v after NATS came back", time.Since(restarted).Round(time.Millisecond))
			break
		} else if time.Since(restarted) > 20*time.Second {
			t.Fatalf("no new client served within 20 s of NATS coming back: %v", err)
		}
		fresh.Close()
		time.Sleep(250 * time.Millisecond)
	}
	for id, p := range c.procs {
		if p.ProcessState != nil {
			t.Errorf("%s exited", id)
		}
	}
	await.True(t, "edge and worker ready again", func() bool {
		return readyz(c.metrics["e1"]) == http.StatusOK && readyz(c.metrics["w1"]) == http.StatusOK
	})
}

// TestNATSServerKilled: edge and worker use different servers of a NATS
// cluster of three; the edge's server is shut down, then the worker's.
// Each time both carry on through the servers left: sessions that lost no
// frame go on (idle ones, and clients that connect and echo again), and a
// stream open across the loss carries on intact or ends with an error,
// never with data lost or stalled.
func TestNATSServerKilled(t *testing.T) {
	interop.Require(t)
	boot, echoKey := startJSEcho(t, interop.RandomSeed())
	c := newCluster(t, boot, "")
	c.natsCluster = natstest.Cluster(t, 3)
	c.worker("w1")  // on n0
	c.edge("e1", 1) // on n1
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	const idle = 40
	src := loadgen.NewSources(netip.MustParsePrefix("127.0.0.0/8"), 10)
	var sessions []*loadgen.Session
	for range idle {
		s, err := loadgen.Open(ctx, c.ws["e1"], src.Next())
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		sessions = append(sessions, s)
	}
	var clients []*relay.Client
	for _, custodial := range []bool{true, false} {
		kp, _ := noise.GenerateKeyPair(rand.Reader)
		cl := dialClient(t, ctx, c.ws["e1"], kp, custodial)
		if err := echoOnce(ctx, cl, echoKey); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, cl)
	}
	for _, n := range []int{1, 0} {
		what := map[int]string{1: "the edge's", 0: "the worker's"}[n]
		// Its own session: one that lost frames ends.
		kp, _ := noise.GenerateKeyPair(rand.Reader)
		streamer := dialClient(t, ctx, c.ws["e1"], kp, true)
		streamAcross(t, ctx, streamer, echoKey, func() {
			t.Logf("shutting down %s NATS server", what)
			c.natsCluster[n].Shutdown()
		})
		await.True(t, "edge and worker ready again", func() bool {
			return readyz(c.metrics["e1"]) == http.StatusOK && readyz(c.metrics["w1"]) == http.StatusOK
		})
		for i, cl := range clients {
			if err := echoOnce(ctx, cl, echoKey); err != nil {
				t.Fatalf("after %s server went, client %d: %v", what, i, err)
			}
		}
		ended := 0
		for _, s := range sessions {
			select {
			case <-s.Done():
				ended++
			default:
			}
		}
		if ended > 0 {
			t.Fatalf("after %s server went, %d of %d idle sessions ended", what, ended, idle)
		}
		if got, _ := strconv.Atoi(metric(c.metrics["e1"], "dhtrelay_sessions")); got < idle+len(clients) {
			t.Errorf("the edge counts %d sessions", got)
		}
	}
}

// echoOnce connects c to key and echoes 64 KiB.
func echoOnce(ctx context.Context, c *relay.Client, key [32]byte) error {
	msg := make([]byte, 64<<10)
	rand.Read(msg)
	return loadgen.Echo(ctx, c, key, msg)
}

// streamAcross streams 4 MiB through an echo server at key, 64 KiB every
// 20 ms, while outage runs, and fails t if the stream stalls or delivers
// other data; an error ending it is an outcome as good as data intact.
func streamAcross(t *testing.T, ctx context.Context, c *relay.Client, key [32]byte, outage func()) {
	t.Helper()
	conn, err := c.Connect(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	data := make([]byte, 4<<20)
	rand.Read(data)
	go func() {
		for off := 0; off < len(data); off += 64 << 10 {
			if _, err := conn.Write(data[off : off+64<<10]); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var stalled atomic.Bool
	watchdog := time.AfterFunc(45*time.Second, func() {
		stalled.Store(true)
		conn.Close()
	})
	defer watchdog.Stop()
	got := make(chan error, 1)
	back := make([]byte, len(data))
	go func() {
		_, err := io.ReadFull(conn, back)
		got <- err
	}()
	time.Sleep(300 * time.Millisecond)
	outage()
	err = <-got
	switch {
	case stalled.Load():
		t.Fatal("the stream across the outage stalled: neither its data nor an error")
	case err != nil:
		t.Logf("the stream across the outage ended with an error: %v", err)
	case !bytes.Equal(back, data):
		t.Fatal("the stream across the outage delivered different data")
	default:
		t.Log("the stream across the outage carried on intact")
	}
}

// readyz returns the status of a node's /readyz.
func readyz(addr string) int {
	res, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}
