package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/dhtrelay/dht-relay/compact"
	"github.com/dhtrelay/dht-relay/internal/interop"
	"github.com/dhtrelay/dht-relay/noise"
	"github.com/dhtrelay/dht-relay/protomux"
	"github.com/dhtrelay/dht-relay/relay"
	"github.com/dhtrelay/dht-relay/secretstream"
	"github.com/dhtrelay/dht-relay/udx"
)

// TestHostileSuite runs attacks one after another against one dht-relay
// with its default limits, while an honest client echoes 64 bytes through
// it to a JS peer without pause. For each attack it measures the relay's
// resident memory, goroutines and the honest round trip before, during
// and after, and asserts that the honest client is served throughout,
// that memory stays within the attack's bound, and that goroutines and
// the heap come back once the attackers are gone.
//
// Attackers come from 127.0.2.0/24 and up, the honest client from
// 127.0.0.1, so the per-address and per-subnet limits meet the attackers
// and not the honest client, as they would on a real network.
func TestHostileSuite(t *testing.T) {
	interop.Require(t)
	if testing.Short() {
		t.Skip("runs attacks for a few minutes")
	}
	peer, boot := interop.StartTestnet(t)
	echo := interop.RandomSeed()
	source := interop.RandomSeed()
	interop.RequireOK(t, "js listen", peer.Do("listen", echo))
	interop.RequireOK(t, "js source", peer.Do("listenSource", source, strconv.Itoa(1<<30)))
	// A soft memory limit, as the chart sets from the container's: without
	// one the collector lets the heap reach twice what is live.
	rel := startRelayBinaryIn(t, []string{"env", "GOMEMLIMIT=" + strconv.Itoa(memLimit>>20) + "MiB"}, boot, "--metrics", "127.0.0.1:0", "--debug-addr", "127.0.0.1:0")
	env := &hostileEnv{rel: rel, pid: rel.cmd.Process.Pid, source: keyOf(source).Public}
	h := startHonest(t, rel, keyOf(echo).Public)

	var rows []string
	for _, a := range hostileAttacks {
		t.Run(a.name, func(t *testing.T) {
			rows = append(rows, runAttack(t, env, h, a))
		})
	}
	t.Logf("\n| attack | RSS MB before / peak / after | goroutines before / peak / after | heap MB before / after | honest RTT ms before / during / after |\n|---|---|---|---|---|\n%s", strings.Join(rows, "\n"))
}

type hostileEnv struct {
	rel    *relayBinary
	pid    int
	source [32]byte // a JS peer that sends without end
	ips    int      // attacker addresses handed out
}

// fresh is an attacker address not used before, so that one attack does
// not spend another's allowance: 250 to a /24 from 127.0.2.0/24 on.
func (e *hostileEnv) fresh() string {
	e.ips++
	return fmt.Sprintf("127.0.%d.%d", 2+e.ips/250, 1+e.ips%250)
}

// attack starts attackers and returns what stops them; it runs for
// during, then is stopped. peak bounds the growth of resident memory
// while it runs.
type attack struct {
	name   string
	during time.Duration
	peak   int64
	start  func(t *testing.T, env *hostileEnv) (stop func())
}

// memLimit is the relay's soft memory limit (GOMEMLIMIT) in the suite:
// the read budget and a little more.
const memLimit = 320 << 20

var hostileAttacks = []attack{
	{"silent connections", 13 * time.Second, 64 << 20, silentConnections},
	{"session flood from one address", 3 * time.Second, 64 << 20, sessionFlood},
	// The read budget (256 MiB) held, and what of messages read and let go
	// the collector has not yet reclaimed, within the soft limit.
	{"32 MiB messages", 8 * time.Second, memLimit + 64<<20, largeMessages},
	{"declared 16 MiB SecretStream frames", 5 * time.Second, 64 << 20, declaredFrames},
	{"data of a million empty buffers", 5 * time.Second, 64 << 20, emptyBuffers},
	{"rejected Protomux opens", 5 * time.Second, 64 << 20, protomuxOpens},
	// Each stream holds up to udx.RecvBufferSize (4 MiB, libudx's window)
	// the peer sent and the client has not taken.
	{"clients that never read", 12 * time.Second, 20*udx.RecvBufferSize + 64<<20, neverRead},
}

func runAttack(t *testing.T, env *hostileEnv, h *honest, a attack) string {
	rssBefore, gBefore, heapBefore := rss(t, env.pid), goroutines(t, env.rel), heapAfterGC(t, env.rel)
	rttBefore := h.take(t, "before")
	stop := a.start(t, env)
	rssPeak, gPeak := rssBefore, gBefore
	for end := time.Now().Add(a.during); time.Now().Before(end); {
		rssPeak, gPeak = max(rssPeak, rss(t, env.pid)), max(gPeak, goroutines(t, env.rel))
		h.check(t)
		time.Sleep(100 * time.Millisecond)
	}
	rttDuring := h.take(t, "during")
	stop()
	// Goroutines come back to their level once the attackers are gone.
	const slack = 16
	deadline := time.Now().Add(30 * time.Second)
	g := goroutines(t, env.rel)
	for ; g > gBefore+slack && time.Now().Before(deadline); g = goroutines(t, env.rel) {
		h.check(t)
		time.Sleep(200 * time.Millisecond)
	}
	// What the edge and the worker hold of their budgets comes back.
	for _, m := range []string{"dhtrelay_read_budget_bytes ", "dhtrelay_worker_held_bytes "} {
		for held := metricInt(t, env.rel.metrics, m); held > 1<<20; held = metricInt(t, env.rel.metrics, m) {
			if time.Now().After(deadline) {
				t.Errorf("%s: %d bytes still held after the attack", strings.TrimSpace(m), held)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	heapAfter := heapAfterGC(t, env.rel)
	rssAfter := rss(t, env.pid)
	rttAfter := h.take(t, "after")
	if g > gBefore+slack {
		t.Errorf("%d goroutines 30 s after the attack, %d before", g, gBefore)
	}
	if grew := rssPeak - rssBefore; grew > a.peak {
		t.Errorf("resident memory grew by %d MB during the attack, bound %d MB", grew>>20, a.peak>>20)
	}
	if grew := heapAfter - heapBefore; grew > 16<<20 {
		t.Errorf("the heap holds %d MB more after the attack than before", grew>>20)
	}
	mb := func(n int64) int64 { return n >> 20 }
	return fmt.Sprintf("| %s | %d / %d / %d | %d / %d / %d | %d / %d | %.2f / %.2f / %.2f |",
		a.name, mb(rssBefore), mb(rssPeak), mb(rssAfter), gBefore, gPeak, g, mb(heapBefore), mb(heapAfter), rttBefore, rttDuring, rttAfter)
}

func goroutines(t *testing.T, rel *relayBinary) int64 {
	return metricInt(t, rel.metrics, "go_goroutines ")
}

// heapAfterGC has the relay collect its garbage, through the profiler
// (--debug-addr) that does on asking, and returns the heap it still
// holds: the spans in use, fragmentation and all.
func heapAfterGC(t *testing.T, rel *relayBinary) int64 {
	t.Helper()
	collect(t, rel)
	return metricInt(t, rel.metrics, "go_memstats_heap_inuse_bytes ")
}

// liveAfterGC is the bytes of the relay's heap objects still reachable
// after it collected its garbage: what a leak grows, without the spans'
// fragmentation, which moves the heap in use by a megabyte either way
// from one collection to the next. It is read from the heap profile and
// not from /metrics, whose own gzip writer (close to a megabyte, pooled)
// was in the figure or not from one scrape to the next.
func liveAfterGC(t *testing.T, rel *relayBinary) int64 {
	t.Helper()
	collect(t, rel)
	b, err := fetchBody("http://" + rel.debug + "/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		t.Fatal(err)
	}
	m := heapAllocLine.FindSubmatch(b)
	if m == nil {
		t.Fatal("the heap profile has no HeapAlloc line")
	}
	n, err := strconv.ParseInt(string(m[1]), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// heapAllocLine is the runtime's figure for live heap bytes in a heap
// profile written with debug=1.
var heapAllocLine = regexp.MustCompile(`(?m)^# HeapAlloc = (\d+)$`)

// collect has the relay collect its garbage twice: buffers in a
// sync.Pool outlive one collection.
func collect(t *testing.T, rel *relayBinary) {
	t.Helper()
	for range 2 {
		res, err := http.Get("http://" + rel.debug + "/debug/pprof/heap?gc=1")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
}

// honest is a client that echoes 64 bytes through the relay over and
// over, on a goroutine of its own, recording each round trip.
type honest struct {
	mu     sync.Mutex
	rtts   []float64 // ms, since the last take
	err    error
	lastOK time.Time
}

// honestStall is how long the honest client may go without a round
// trip before it is taken as not served.
const honestStall = 10 * time.Second

func startHonest(t *testing.T, rel *relayBinary, echoKey [32]byte) *honest {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c, err := goClient(ctx, relayUnderTest{ws: rel.ws}, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	conn, err := c.Connect(ctx, echoKey)
	if err != nil {
		t.Fatal(err)
	}
	h := &honest{lastOK: time.Now()}
	go func() {
		msg, got := make([]byte, 64), make([]byte, 64)
		rand.Read(msg)
		for ctx.Err() == nil {
			t0 := time.Now()
			_, err := conn.Write(msg)
			if err == nil {
				_, err = io.ReadFull(conn, got)
			}
			if err == nil && !bytes.Equal(got, msg) {
				err = fmt.Errorf("echo differs")
			}
			h.mu.Lock()
			if err != nil {
				h.err = err
				h.mu.Unlock()
				return
			}
			h.rtts = append(h.rtts, float64(time.Since(t0).Microseconds())/1000)
			h.lastOK = time.Now()
			h.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return h
}

// check fails the test if the honest client failed or has gone without a
// round trip for honestStall.
func (h *honest) check(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		t.Fatalf("the honest client failed: %v", h.err)
	}
	if since := time.Since(h.lastOK); since > honestStall {
		t.Fatalf("the honest client has had no round trip for %v", since.Round(time.Second))
	}
}

// take returns the median round trip since the last take, waiting for one
// if there is none yet.
func (h *honest) take(t *testing.T, when string) float64 {
	t.Helper()
	for deadline := time.Now().Add(honestStall); ; time.Sleep(50 * time.Millisecond) {
		h.check(t)
		h.mu.Lock()
		rtts := h.rtts
		if len(rtts) > 0 {
			h.rtts = nil
		}
		h.mu.Unlock()
		if len(rtts) > 0 {
			return median(rtts)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no honest round trip %s the attack", when)
		}
	}
}

func dialTCPFrom(ip, addr string) (net.Conn, error) {
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	return nd.Dial("tcp", addr)
}

// closeAll closes what the attack opened, as its stop.
func closeAll(cs *[]io.Closer, mu *sync.Mutex) func() {
	return func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range *cs {
			c.Close()
		}
	}
}

// silentConnections: WebSocket upgrades that never send a handshake, TCP
// connections that never send a byte, and slowloris requests that send a
// byte of header a second. All are closed by the deadlines.
func silentConnections(t *testing.T, env *hostileEnv) func() {
	var (
		mu    sync.Mutex
		conns []io.Closer
		wg    sync.WaitGroup
	)
	add := func(c io.Closer) { mu.Lock(); conns = append(conns, c); mu.Unlock() }
	wsHost := strings.TrimPrefix(env.rel.ws, "ws://")
	if i := strings.IndexByte(wsHost, '/'); i >= 0 {
		wsHost = wsHost[:i]
	}
	// 50 connections of each kind to an address, within its burst.
	ips := make([]string, 14)
	for i := range ips {
		ips[i] = env.fresh()
	}
	for i := range 300 {
		wg.Add(3)
		go func() {
			defer wg.Done()
			if c, _, err := from(ips[i/50]).Dial(env.rel.ws, nil); err == nil {
				add(c)
			}
		}()
		go func() {
			defer wg.Done()
			if c, err := dialTCPFrom(ips[6+i/50], env.rel.tcp); err == nil {
				add(c)
			}
		}()
		if i >= 100 {
			wg.Done()
			continue
		}
		go func() {
			defer wg.Done()
			c, err := dialTCPFrom(ips[12+i/50], wsHost)
			if err != nil {
				return
			}
			add(c)
			c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n"))
			for range 20 {
				time.Sleep(time.Second)
				if _, err := c.Write([]byte("X")); err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	// The relay closes every one of them by its deadlines.
	mu.Lock()
	held := slices.Clone(conns)
	mu.Unlock()
	if len(held) < 600 {
		t.Errorf("only %d of 700 connections were accepted", len(held))
	}
	return func() {
		open := 0
		for _, c := range held {
			if nc, ok := c.(interface{ SetReadDeadline(time.Time) error }); ok {
				nc.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
			}
			var err error
			switch c := c.(type) {
			case *websocket.Conn:
				_, _, err = c.ReadMessage()
			case net.Conn:
				_, err = c.Read(make([]byte, 1))
			}
			if isTimeout(err) {
				open++
			}
			c.Close()
		}
		if open > 0 {
			t.Errorf("%d silent connections still open after %v", open, 13*time.Second)
		}
	}
}

// sessionFlood: one address opens sessions as fast as it can; past its
// share and rate it is refused.
func sessionFlood(t *testing.T, env *hostileEnv) func() {
	var cs []io.Closer
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 60 {
				if c, _, err := from("127.0.1.1").Dial(env.rel.ws, nil); err == nil {
					mu.Lock()
					cs = append(cs, c)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if n := errorCountAt(t, env.rel.metrics, "address_rate") + errorCountAt(t, env.rel.metrics, "address_sessions"); n == 0 {
		t.Error("480 sessions from one address at once were not refused")
	}
	return closeAll(&cs, &mu)
}

// largeMessages: sessions each send one 32 MiB message; the read budget
// bounds what the edge holds.
func largeMessages(t *testing.T, env *hostileEnv) func() {
	var cs []io.Closer
	var mu sync.Mutex
	body := make([]byte, 32<<20)
	for range 16 {
		ic, err := dialIdleClientWith(from(env.fresh()), env.rel.ws, nil)
		if err != nil {
			continue // refused while the budget is spent
		}
		cs = append(cs, ic.c)
		go func() {
			ic.c.SetWriteDeadline(time.Now().Add(20 * time.Second))
			ic.c.WriteMessage(websocket.BinaryMessage, body)
		}()
	}
	return closeAll(&cs, &mu)
}

// declaredFrames: TCP sessions that, after their handshake, declare a
// SecretStream message of 16 MiB and send nothing more of it.
func declaredFrames(t *testing.T, env *hostileEnv) func() {
	var cs []io.Closer
	var mu sync.Mutex
	for range 100 {
		c, err := dialTCPFrom(env.fresh(), env.rel.tcp)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
		kp, _ := noise.GenerateKeyPair(rand.Reader)
		ss, err := secretstream.New(c, true, secretstream.Config{KeyPair: kp})
		if err != nil {
			t.Fatal(err)
		}
		mux := protomux.New(ss)
		ch := mux.CreateChannel(relay.Protocol, nil, protomux.Handlers{})
		if err := ch.Open(nil); err != nil {
			t.Fatal(err)
		}
		hs := &relay.Handshake{Custodial: true, PublicKey: kp.Public, SecretKey: kp.Secret}
		ch.Send(uint64(hs.Type()), hs.AppendPayload(nil))
		c.Write([]byte{0xff, 0xff, 0xff})
	}
	return closeAll(&cs, &mu)
}

// emptyBuffers: sessions send Data messages that each declare as many
// empty buffers as a message may hold.
func emptyBuffers(t *testing.T, env *hostileEnv) func() {
	var cs []io.Closer
	var mu sync.Mutex
	payload := compact.AppendUint(compact.AppendUint32(nil, 1), compact.MaxArrayLen)
	payload = append(payload, make([]byte, compact.MaxArrayLen)...)
	for range 16 {
		ic, err := dialIdleClientWith(from(env.fresh()), env.rel.ws, nil)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, ic.c)
		go func() {
			for range 16 {
				if ic.ch.Send(uint64(relay.TypeData), payload) != nil {
					return
				}
			}
		}()
	}
	return closeAll(&cs, &mu)
}

// protomuxOpens: one session opens channels of protocols nobody serves,
// a quarter of a million times.
func protomuxOpens(t *testing.T, env *hostileEnv) func() {
	ic, err := dialIdleClientWith(from(env.fresh()), env.rel.ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for i := range 250_000 {
			if ic.mux.CreateChannel("nobody-"+strconv.Itoa(i), nil, protomux.Handlers{}).Open(nil) != nil {
				return
			}
		}
	}()
	return func() { ic.c.Close() }
}

// neverRead: sessions connect to a peer that sends without end and never
// read what the relay sends them.
func neverRead(t *testing.T, env *hostileEnv) func() {
	var cs []io.Closer
	var mu sync.Mutex
	for range 20 {
		ic, err := dialIdleClientWith(from(env.fresh()), env.rel.ws, nil)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, ic.c)
		kp, _ := noise.GenerateKeyPair(rand.Reader)
		ic.send(&relay.Connect{Custodial: true, Alias: 1, PublicKey: kp.Public, SecretKey: kp.Secret, RemotePublicKey: env.source})
	}
	return closeAll(&cs, &mu)
}
