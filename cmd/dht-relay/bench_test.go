package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/dhtrelay/dht-relay/dhtrpc"
	"github.com/dhtrelay/dht-relay/hyperdht"
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

// throughput streams a JS server's bytes to the relayed client and returns
// MB/s (median of runs) and how far the relay's memory rose meanwhile
// above what it held before; an error when the relay cannot do it. It
// reports the relay's CPU time per GB and the share of one core the client
// kept busy, which shows when the client, not the relay, sets the rate.
func throughput(b *testing.B, r relayUnderTest, mode, sourceKey string, runs int) (float64, int64, error) {
	u := interop.StartUser(b, "ws", r.ws, mode)
	cpu0, client0 := cpuTime(b, r.pid), cpuTime(b, u.Pid())
	moved, busy := 0.0, time.Duration(0)
	defer func() {
		// Either process may have died, as the JS relay's sometimes does.
		relayCPU, ok1 := procCPU(r.pid)
		clientCPU, ok2 := procCPU(u.Pid())
		if moved > 0 && ok1 && ok2 {
			fmt.Fprintf(os.Stderr, "bench: %s %s (JS client): relay CPU %.2f s per GB; the client busy %.0f%% of a core while streaming\n",
				r.name, mode, (relayCPU-cpu0).Seconds()/(moved/1e9), 100*(clientCPU-client0).Seconds()/busy.Seconds())
		}
	}()
	var rates []float64
	base := rss(b, r.pid)
	peak := base
	for range runs {
		u.Send(map[string]any{"cmd": "sink", "key": sourceKey, "pauseMs": 0})
		t0 := time.Now()
		type answer struct {
			line string
			err  error
		}
		done := make(chan answer, 1)
		go func() {
			line, err := u.ReadLineWithin(60 * time.Second)
			done <- answer{line, err}
		}()
		var a answer
	sample:
		for {
			select {
			case a = <-done:
				break sample
			case <-time.After(50 * time.Millisecond):
				now, ok := procRSS(r.pid)
				if !ok {
					return 0, peak - base, fmt.Errorf("%s relay exited", r.name)
				}
				peak = max(peak, now)
			}
		}
		busy += time.Since(t0)
		var res map[string]any
		if a.err == nil {
			a.err = json.Unmarshal([]byte(a.line), &res)
		}
		if a.err == nil && res["ok"] != true {
			a.err = fmt.Errorf("%v", res)
		}
		if a.err != nil {
			return 0, peak - base, a.err
		}
		rates = append(rates, res["mbps"].(float64))
		moved += res["bytes"].(float64)
	}
	return median(rates), peak - base, nil
}

// throughputGoClient streams a JS server's bytes to the Go client through
// the relay: the relay's own speed, without the JS client's limits.
func throughputGoClient(b *testing.B, r relayUnderTest, custodial bool, sourceKey [32]byte, runs int) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := goClient(ctx, r, custodial)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	var rates []float64
	buf := make([]byte, 1<<20)
	cpu0, moved := cpuTime(b, r.pid), 0
	defer func() { reportRelayCPU(r, fmt.Sprintf("custodial=%v (Go client)", custodial), cpu0, moved) }()
	for range runs {
		conn, err := c.Connect(ctx, sourceKey)
		if err != nil {
			return 0, err
		}
		start := time.Now()
		n := 0
		for {
			k, err := conn.Read(buf)
			n += k
			if err == io.EOF {
				break
			}
			if err != nil {
				conn.Close()
				return 0, err
			}
		}
		rates = append(rates, float64(n)/time.Since(start).Seconds()/1e6)
		moved += n
		conn.Close()
	}
	return median(rates), nil
}

// goClient opens a session on r for the Go client, over WebSocket, with a
// fresh key.
func goClient(ctx context.Context, r relayUnderTest, custodial bool) (*relay.Client, error) {
	tr, err := relay.DialWebSocket(ctx, r.ws)
	if err != nil {
		return nil, err
	}
	kp, _ := noise.GenerateKeyPair(rand.Reader)
	return relay.NewClient(tr, relay.ClientConfig{KeyPair: kp, Custodial: custodial})
}

// reportRelayCPU prints the relay's CPU time per GB since cpu0, for moved
// bytes of what, unless nothing moved or the relay has exited.
func reportRelayCPU(r relayUnderTest, what string, cpu0 time.Duration, moved int) {
	if cpu, ok := procCPU(r.pid); moved > 0 && ok {
		fmt.Fprintf(os.Stderr, "bench: %s %s: relay CPU %.2f s per GB\n", r.name, what, (cpu-cpu0).Seconds()/(float64(moved)/1e9))
	}
}

// directThroughput streams the source's bytes to a Go HyperDHT node with
// no relay between: the ceiling the peer and the machine set for the
// relayed runs, which share its cores.
func directThroughput(b *testing.B, boot string, sourceKey [32]byte, runs int) float64 {
	n := testnetNode(b, boot)
	defer n.Close() // not idle beside the relays' runs
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kp, _ := noise.GenerateKeyPair(rand.Reader)
	var rates []float64
	for range runs {
		c, err := n.Connect(ctx, sourceKey, hyperdht.ClientConfig{KeyPair: &kp})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		k, err := io.Copy(io.Discard, c)
		if err != nil {
			b.Fatal(err)
		}
		rates = append(rates, float64(k)/time.Since(start).Seconds()/1e6)
		c.Close()
	}
	return median(rates)
}

// cpuTime is the CPU time a process has used.
func cpuTime(b *testing.B, pid int) time.Duration {
	d, ok := procCPU(pid)
	if !ok {
		procGone(b, pid)
	}
	return d
}

// procCPU is the CPU time pid has used; false once it has exited.
func procCPU(pid int) (time.Duration, bool) {
	t, ok := procTimes(pid)
	return t.user + t.system, ok
}

// cpuTimes is a process's CPU time in its own code and in the kernel on
// its behalf (system calls, and on loopback the receiving side of what
// it sends).
type cpuTimes struct{ user, system time.Duration }

// procTimes is the CPU time pid has used, split; false once it has exited.
func procTimes(pid int) (cpuTimes, bool) {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return cpuTimes{}, false
	}
	f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const tick = 10 * time.Millisecond // USER_HZ is 100
	return cpuTimes{time.Duration(utime) * tick, time.Duration(stime) * tick}, true
}

// testnetNode is a Go HyperDHT node on the testnet, bootstrapped, closed
// when the test ends.
func testnetNode(b testing.TB, boot string) *hyperdht.Node {
	n, err := hyperdht.New(hyperdht.Config{DHT: dhtrpc.Config{Bootstrap: []netip.AddrPort{netip.MustParseAddrPort(boot)}, Host: netip.MustParseAddr("127.0.0.1")}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { n.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Bootstrap(ctx); err != nil {
		b.Fatal(err)
	}
	return n
}

// goSource starts a Go HyperDHT node on the testnet serving size bytes to
// every connection, and returns its key pair.
func goSource(b testing.TB, boot string, size int) noise.KeyPair {
	chunk := make([]byte, 64<<10)
	return goServer(b, boot, func(c *hyperdht.Conn) {
		for left := size; left > 0; left -= len(chunk) {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
		c.CloseWrite()
		io.Copy(io.Discard, c)
	})
}

// goSink starts a Go HyperDHT node on the testnet that reads each
// connection to its end and only then answers with the count it read, so
// that a writer knows when its last byte arrived; it returns the key pair.
func goSink(b testing.TB, boot string) noise.KeyPair {
	return goServer(b, boot, func(c *hyperdht.Conn) {
		k, _ := io.Copy(io.Discard, c)
		fmt.Fprint(c, k)
		c.CloseWrite()
	})
}

// goServer starts a Go HyperDHT node on the testnet whose server runs
// serve on each connection, in a goroutine of its own, and closes the
// connection after; it returns the server's key pair.
func goServer(b testing.TB, boot string, serve func(*hyperdht.Conn)) noise.KeyPair {
	n := testnetNode(b, boot)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kp, _ := noise.GenerateKeyPair(rand.Reader)
	srv, err := n.Listen(ctx, hyperdht.ServerConfig{KeyPair: &kp})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	go func() {
		for {
			c, err := srv.Accept(context.Background())
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return kp
}

// uploadGoClient streams size bytes from the Go client through the relay
// to the sink and returns MB/s until the sink has read the last of them
// (median of runs).
func uploadGoClient(b *testing.B, r relayUnderTest, sinkKey [32]byte, size, runs int) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := goClient(ctx, r, true)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	cpu0, moved := cpuTime(b, r.pid), 0
	defer func() { reportRelayCPU(r, "upload (Go client)", cpu0, moved) }()
	var rates []float64
	for range runs {
		conn, err := c.Connect(ctx, sinkKey)
		if err != nil {
			return 0, err
		}
		start := time.Now()
		err = sendToSink(conn, size)
		conn.Close()
		if err != nil {
			return 0, err
		}
		rates = append(rates, float64(size)/time.Since(start).Seconds()/1e6)
		moved += size
	}
	return median(rates), nil
}

// connectLatency is the median time the relayed client takes to open a
// connection to a JS server.
func connectLatency(b *testing.B, r relayUnderTest, echoKey string) float64 {
	u := interop.StartUser(b, "ws", r.ws, "custodial")
	var ms []float64
	for range 15 {
		res := u.Do(map[string]any{"cmd": "connect", "key": echoKey, "bytes": 1})
		if res["ok"] != true {
			b.Fatalf("%s connect: %v", r.name, res)
		}
		ms = append(ms, res["ms"].(float64))
	}
	return median(ms)
}

// idleSessions opens n relay sessions that only answer pings and returns
// the relay's memory growth per session at 1,000 and at n sessions; the
// sessions are closed again before it returns.
func idleSessions(b *testing.B, r relayUnderTest, n int) (float64, float64) {
	before := rss(b, r.pid)
	var mu sync.Mutex
	var conns []*websocket.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
		time.Sleep(2 * time.Second) // let the relay see them go
	}()
	at1k := 0.0
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range n {
		if i == 1000 {
			wg.Wait()
			time.Sleep(3 * time.Second)
			at1k = float64(rss(b, r.pid)-before) / 1000
		}
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
	return at1k, float64(after-before) / float64(n)
}

// BenchmarkRelayVsJS measures dht-relay and the JS relay's own bin side by
// side, on one JS testnet, with the same unchanged JS client: relayed
// throughput custodial and not, connect latency, memory per idle session
// at 1,000 and 10,000 sessions, and how far relay memory rises while
// streaming. Run it once:
// go test -run XXX -bench RelayVsJS -benchtime 1x ./cmd/dht-relay
func BenchmarkRelayVsJS(b *testing.B) {
	interop.Require(b)
	peer, boot := interop.StartTestnet(b)
	echoSeed := interop.RandomSeed()
	interop.RequireOK(b, "echo", peer.Do("listen", echoSeed))
	// The peer the relayed clients read from is a Go HyperDHT node, so
	// that the relay, not the peer, is what limits the rate.
	source := goSource(b, boot, 256<<20)
	sourceKey := hex.EncodeToString(source.Public[:])
	// Every client of the benchmark comes from one address.
	ours := startRelayBinary(b, boot, "--allow-addresses", "127.0.0.1")
	relays := []relayUnderTest{{name: "go", ws: ours.ws, pid: ours.cmd.Process.Pid}, startJSRelay(b, boot)}
	direct := directThroughput(b, boot, source.Public, 3)
	fmt.Fprintf(os.Stderr, "bench: no relay (Go node to the source directly): %.0f MB/s\n", direct)

	sink := goSink(b, boot)

	type figures struct {
		custodial, noncustodial, goCustodial, goNoncustodial, goUpload, connectMs, streamMB, idle1k, idle10k float64
	}
	got := map[string]*figures{}
	progress := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...) }
	// The JS relay's process can fail in non-custodial mode (its client
	// side crashes, or it does): those runs come last, and are said. A
	// failure of this relay fails the benchmark, which goes on measuring.
	failed := func(r relayUnderTest, what string, err error) {
		if r.name == "go" {
			b.Errorf("%s %s fails: %.200v", r.name, what, err)
			return
		}
		progress("%s %s fails: %.200v", r.name, what, err)
	}
	for _, r := range relays {
		f := &figures{}
		got[r.name] = f
		// Idle sessions first, on a relay that has not streamed yet: after
		// streaming, the heap it freed hides what sessions cost.
		f.idle1k, f.idle10k = idleSessions(b, r, 10000)
		progress("%s idle session %.0f B (1,000), %.0f B (10,000)", r.name, f.idle1k, f.idle10k)
		var peak int64
		var err error
		if f.custodial, peak, err = throughput(b, r, "custodial", sourceKey, 3); err != nil {
			b.Fatalf("%s custodial: %v", r.name, err)
		}
		f.streamMB = float64(peak) / (1 << 20)
		if f.goCustodial, err = throughputGoClient(b, r, true, source.Public, 3); err != nil {
			b.Fatalf("%s custodial, Go client: %v", r.name, err)
		}
		progress("%s custodial: JS client %.0f MB/s, Go client %.0f MB/s", r.name, f.custodial, f.goCustodial)
		if f.goUpload, err = uploadGoClient(b, r, sink.Public, 256<<20, 3); err != nil {
			failed(r, "upload, Go client,", err)
		}
		progress("%s upload: Go client %.0f MB/s", r.name, f.goUpload)
		f.connectMs = connectLatency(b, r, interop.PublicKey(echoSeed))
		progress("%s connect %.1f ms", r.name, f.connectMs)
		if f.noncustodial, _, err = throughput(b, r, "noncustodial", sourceKey, 3); err != nil {
			failed(r, "non-custodial, JS client,", err)
		}
		if f.goNoncustodial, err = throughputGoClient(b, r, false, source.Public, 3); err != nil {
			failed(r, "non-custodial, Go client,", err)
		}
		progress("%s non-custodial: JS client %.0f MB/s, Go client %.0f MB/s", r.name, f.noncustodial, f.goNoncustodial)
		b.Logf("%s: JS client custodial %.0f MB/s, non-custodial %.0f MB/s; Go client %.0f / %.0f MB/s, upload %.0f MB/s; connect %.1f ms, +%.0f MB while streaming, idle session %.0f B (1,000) %.0f B (10,000)",
			r.name, f.custodial, f.noncustodial, f.goCustodial, f.goNoncustodial, f.goUpload, f.connectMs, f.streamMB, f.idle1k, f.idle10k)
	}
	g, j := got["go"], got["js"]
	b.ReportMetric(direct, "direct-MB/s")
	b.ReportMetric(g.custodial, "go-custodial-MB/s")
	b.ReportMetric(j.custodial, "js-custodial-MB/s")
	b.ReportMetric(g.custodial/j.custodial, "custodial-x")
	b.ReportMetric(g.noncustodial, "go-noncustodial-MB/s")
	b.ReportMetric(j.noncustodial, "js-noncustodial-MB/s")
	b.ReportMetric(g.goCustodial, "go-custodial-goclient-MB/s")
	b.ReportMetric(j.goCustodial, "js-custodial-goclient-MB/s")
	b.ReportMetric(g.goNoncustodial, "go-noncustodial-goclient-MB/s")
	b.ReportMetric(j.goNoncustodial, "js-noncustodial-goclient-MB/s")
	b.ReportMetric(g.goUpload, "go-upload-goclient-MB/s")
	b.ReportMetric(j.goUpload, "js-upload-goclient-MB/s")
	b.ReportMetric(g.connectMs, "go-connect-ms")
	b.ReportMetric(j.connectMs, "js-connect-ms")
	b.ReportMetric(g.idle10k, "go-idle-B/session")
	b.ReportMetric(j.idle10k, "js-idle-B/session")
	b.ReportMetric(g.idle10k/j.idle10k, "idle-x")
	b.ReportMetric(g.idle1k, "go-idle1k-B/session")
	b.ReportMetric(j.idle1k, "js-idle1k-B/session")
	b.ReportMetric(g.idle1k/j.idle1k, "idle1k-x")
	b.ReportMetric(g.streamMB, "go-streaming-growth-MB")
	b.ReportMetric(j.streamMB, "js-streaming-growth-MB")
}
