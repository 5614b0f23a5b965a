package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/dhtrelay/dht-relay/internal/interop"
	"github.com/dhtrelay/dht-relay/noise"
	"github.com/dhtrelay/dht-relay/protomux"
	"github.com/dhtrelay/dht-relay/relay"
)

// relayUnderTest is one relay process to measure: its WebSocket URL and
// process id.
type relayUnderTest struct {
	name string
	ws   string
	pid  int
}

// startJSRelay runs the JS relay's own bin, joined to the testnet by a
// preload (its bin has no bootstrap flag).
func startJSRelay(b *testing.B, boot string) relayUnderTest {
	b.Setenv("HYPERDHT_BOOTSTRAP", boot)
	p := interop.Start(b, "-r", "./lib/testnet-bootstrap.js", "node_modules/@hyperswarm/dht-relay/bin.js", "--host", "127.0.0.1", "--port", "0")
	line, err := p.ReadLineWithin(60 * time.Second)
	if err != nil {
		b.Fatal(err)
	}
	m := regexp.MustCompile(`on port (\d+)`).FindStringSubmatch(line)
	if m == nil {
		b.Fatalf("JS relay: %s", line)
	}
	go func() { // its per-connection log lines must not block it
		for {
			if _, err := p.ReadLine(); err != nil {
				return
			}
		}
	}()
	return relayUnderTest{name: "js", ws: "ws://127.0.0.1:" + m[1], pid: p.Pid()}
}

func median(xs []float64) float64 {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// throughput streams size bytes from a JS server to the relayed client and
// returns MB/s (median of runs) and the relay's peak memory meanwhile.
func throughput(b *testing.B, r relayUnderTest, mode, sourceKey string, runs int) (float64, int64) {
	u := startUser(b, "ws", r.ws, mode)
	var rates []float64
	peak := int64(0)
	for range runs {
		cmd, _ := json.Marshal(map[string]any{"cmd": "sink", "key": sourceKey, "pauseMs": 0})
		fmt.Fprintln(u.p.Stdin, string(cmd))
		done := make(chan map[string]any, 1)
		go func() { done <- u.read() }()
		var res map[string]any
	sample:
		for {
			select {
			case res = <-done:
				break sample
			case <-time.After(50 * time.Millisecond):
				peak = max(peak, rss(b, r.pid))
			}
		}
		if res["ok"] != true {
			b.Fatalf("%s %s sink: %v", r.name, mode, res)
		}
		rates = append(rates, res["mbps"].(float64))
	}
	return median(rates), peak
}

// connectLatency is the median time the relayed client takes to open a
// connection to a JS server.
func connectLatency(b *testing.B, r relayUnderTest, echoKey string) float64 {
	u := startUser(b, "ws", r.ws, "custodial")
	var ms []float64
	for range 15 {
		res := u.do(map[string]any{"cmd": "connect", "key": echoKey, "bytes": 1})
		if res["ok"] != true {
			b.Fatalf("%s connect: %v", r.name, res)
		}
		ms = append(ms, res["ms"].(float64))
	}
	return median(ms)
}

// idleSessions opens n relay sessions that only answer pings and returns
// the relay's memory growth per session.
func idleSessions(b *testing.B, r relayUnderTest, n int) float64 {
	before := rss(b, r.pid)
	var mu sync.Mutex
	var conns []*websocket.Conn
	b.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			c, _, err := websocket.DefaultDialer.Dial(r.ws, nil)
			if err != nil {
				b.Error(err)
				return
			}
			mux := protomux.New(relay.NewWebSocketFramed(c, 1<<20, 10*time.Second))
			ch, err := relay.OpenChannel(mux, relay.ChannelConfig{AliveTimeout: time.Hour})
			if err != nil {
				b.Error(err)
				return
			}
			go mux.Run()
			kp, _ := noise.GenerateKeyPair(rand.Reader)
			ch.Send(&relay.Handshake{Custodial: true, PublicKey: kp.Public, SecretKey: kp.Secret})
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	time.Sleep(3 * time.Second) // let the relay settle
	after := rss(b, r.pid)
	return float64(after-before) / float64(n)
}

// BenchmarkRelayVsJS measures dht-relay and the JS relay's own bin side by
// side, on one JS testnet, with the same unchanged JS client: relayed
// throughput custodial and not, connect latency, memory per idle session
// at 1,000 and 10,000 sessions, and relay memory while streaming. Run it
// once: go test -run XXX -bench RelayVsJS -benchtime 1x ./cmd/dht-relay
func BenchmarkRelayVsJS(b *testing.B) {
	interop.Require(b)
	peer, boot := startTestnet(b)
	const size = 64 << 20
	sourceSeed, echoSeed := randomSeed(), randomSeed()
	requireOK(b, "source", peer.do("listenSource", sourceSeed, strconv.Itoa(size)))
	requireOK(b, "echo", peer.do("listen", echoSeed))
	ours := startRelayBinary(b, boot)
	relays := []relayUnderTest{{name: "go", ws: ours.ws, pid: ours.cmd.Process.Pid}, startJSRelay(b, boot)}

	type figures struct{ custodial, noncustodial, connectMs, streamMB, idle1k, idle10k float64 }
	got := map[string]*figures{}
	for _, r := range relays {
		f := &figures{}
		got[r.name] = f
		var peak int64
		f.custodial, peak = throughput(b, r, "custodial", publicKey(sourceSeed), 3)
		f.streamMB = float64(peak) / (1 << 20)
		f.noncustodial, _ = throughput(b, r, "noncustodial", publicKey(sourceSeed), 3)
		f.connectMs = connectLatency(b, r, publicKey(echoSeed))
		f.idle1k = idleSessions(b, r, 1000)
		f.idle10k = idleSessions(b, r, 9000) // on top of the first 1,000
		b.Logf("%s: custodial %.0f MB/s, non-custodial %.0f MB/s, connect %.1f ms, %.0f MB while streaming, idle session %.0f B (1,000) %.0f B (10,000)",
			r.name, f.custodial, f.noncustodial, f.connectMs, f.streamMB, f.idle1k, f.idle10k)
	}
	g, j := got["go"], got["js"]
	b.ReportMetric(g.custodial, "go-custodial-MB/s")
	b.ReportMetric(j.custodial, "js-custodial-MB/s")
	b.ReportMetric(g.custodial/j.custodial, "custodial-x")
	b.ReportMetric(g.noncustodial, "go-noncustodial-MB/s")
	b.ReportMetric(j.noncustodial, "js-noncustodial-MB/s")
	b.ReportMetric(g.noncustodial/j.noncustodial, "noncustodial-x")
	b.ReportMetric(g.connectMs, "go-connect-ms")
	b.ReportMetric(j.connectMs, "js-connect-ms")
	b.ReportMetric(g.idle10k, "go-idle-B/session")
	b.ReportMetric(j.idle10k, "js-idle-B/session")
	b.ReportMetric(g.streamMB, "go-streaming-MB")
	b.ReportMetric(j.streamMB, "js-streaming-MB")
}
