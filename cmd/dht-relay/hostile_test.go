package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/dhtrelay/dht-relay/hyperdht"
	"github.com/dhtrelay/dht-relay/internal/await"
	"github.com/dhtrelay/dht-relay/internal/interop"
	"github.com/dhtrelay/dht-relay/noise"
	"github.com/dhtrelay/dht-relay/relay"
	"github.com/dhtrelay/dht-relay/secretstream"
	"github.com/dhtrelay/dht-relay/udx"
)

// from dials from the loopback address ip, which Linux routes like
// 127.0.0.1: one machine can be many clients.
func from(ip string) *websocket.Dialer {
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &websocket.Dialer{NetDialContext: nd.DialContext, HandshakeTimeout: 10 * time.Second}
}

// TestPerAddressLimits: one address cannot take more than its share of
// sessions, over WebSocket or TCP, and never the edge's every slot; other
// addresses are served meanwhile, and a client behind a proxy cannot
// escape its share by writing addresses into X-Forwarded-For.
func TestPerAddressLimits(t *testing.T) {
	interop.Require(t)
	_, boot := interop.StartTestnet(t)
	const share = 4
	rel := startRelay(t, "--bootstrap", boot, "--max-sessions", "10", "--max-sessions-per-address", "4", "--session-burst", "100", "--metrics", "127.0.0.1:0")
	for range share {
		ic, err := dialIdleClientWith(from("127.0.0.2"), rel.ws, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ic.c.Close()
	}
	if ic, err := dialIdleClientWith(from("127.0.0.2"), rel.ws, nil); err == nil {
		ic.c.Close()
		t.Fatal("a session past the address's share was taken")
	}
	// Over TCP the connection is closed at once.
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	c, err := nd.Dial("tcp", rel.tcp)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("a TCP connection past the address's share was kept: %v", err)
	}
	c.Close()
	// Another address is served.
	honest, err := dialIdleClientWith(from("127.0.0.3"), rel.ws, nil)
	if err != nil {
		t.Fatalf("another address refused: %v", err)
	}
	honest.c.Close()
	if n := errorCountAt(t, rel.metrics, "address_sessions"); n < 2 {
		t.Fatalf("%d refusals counted as address_sessions, want 2", n)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestNewSessionRate: an address opening sessions faster than its rate
// is refused past its burst, and counted.
func TestNewSessionRate(t *testing.T) {
	interop.Require(t)
	_, boot := interop.StartTestnet(t)
	rel := startRelay(t, "--bootstrap", boot, "--session-rate", "1", "--session-burst", "3", "--metrics", "127.0.0.1:0")
	refused := 0
	for range 6 {
		ic, err := dialIdleClientWith(from("127.0.0.4"), rel.ws, nil)
		if err != nil {
			refused++
			continue
		}
		ic.c.Close()
	}
	if refused == 0 {
		t.Fatal("six sessions at once with a burst of three: none refused")
	}
	if n := errorCountAt(t, rel.metrics, "address_rate"); n != refused {
		t.Fatalf("%d refusals counted as address_rate, %d seen", n, refused)
	}
}

// TestForwardedForCannotBeForged: behind one proxy, the client's address
// is the one the proxy appended, whatever the client wrote before it.
func TestForwardedForCannotBeForged(t *testing.T) {
	interop.Require(t)
	_, boot := interop.StartTestnet(t)
	rel := startRelay(t, "--bootstrap", boot, "--behind-proxy", "--max-sessions-per-address", "2", "--session-burst", "100")
	open := 0
	for i := range 4 {
		// What the proxy passes on: the client's forgery, then the
		// address the proxy saw.
		h := http.Header{"X-Forwarded-For": {fmt.Sprintf("198.51.100.%d, 203.0.113.9", i+1)}}
		ic, err := dialIdleClientWith(websocket.DefaultDialer, rel.ws, h)
		if err != nil {
			continue
		}
		defer ic.c.Close()
		open++
	}
	if open != 2 {
		t.Fatalf("%d sessions from one client behind the proxy, with the share at 2", open)
	}
}

// TestReadBudget: clients that each start a large message and stall can
// hold no more than the edge's read budget together; one whose message
// does not fit is closed, new sessions are refused while the budget is
// nearly spent, a session already open keeps its round trips, and once
// the stalled messages time out everything is given back.
func TestReadBudget(t *testing.T) {
	interop.Require(t)
	_, boot := interop.StartTestnet(t)
	const budget = 8 << 20
	rel := startRelayBinary(t, boot, "--read-budget", fmt.Sprint(budget), "--write-timeout", "10s", "--metrics", "127.0.0.1:0")
	pid := rel.cmd.Process.Pid
	honest, err := dialIdleClient(rel.ws)
	if err != nil {
		t.Fatal(err)
	}
	defer honest.c.Close()
	base := rss(t, pid)
	// Each starts a message, sends 5 MiB of it and stalls.
	var stalled []*idleClient
	for range 3 {
		ic, err := dialIdleClient(rel.ws)
		if err != nil {
			t.Fatal(err)
		}
		defer ic.c.Close()
		stalled = append(stalled, ic)
	}
	for _, ic := range stalled {
		w, err := ic.c.NextWriter(websocket.BinaryMessage)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(make([]byte, 5<<20)) // fragments go out; the message is never finished
	}
	deadline := time.Now().Add(30 * time.Second)
	for errorCountAt(t, rel.metrics, "read_budget") == 0 {
		if time.Now().After(deadline) {
			res, _ := http.Get("http://" + rel.metrics + "/metrics")
			b, _ := io.ReadAll(res.Body)
			t.Fatalf("three stalled 5 MiB messages fit an 8 MiB budget:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := dialIdleClient(rel.ws); err == nil {
		t.Fatal("a new session was taken with the read budget spent")
	}
	if used := metricInt(t, rel.metrics, "dhtrelay_read_budget_bytes "); used > budget {
		t.Fatalf("the edge holds %d bytes of messages being read, over its budget of %d", used, budget)
	}
	if grew := rss(t, pid) - base; grew > 64<<20 {
		t.Fatalf("the relay grew by %d MB with an 8 MiB read budget", grew>>20)
	}
	honest.ping(t)
	// The stalled messages time out; their bytes come back.
	if !await.Poll(time.Until(deadline), func() bool { return metricInt(t, rel.metrics, "dhtrelay_read_budget_bytes ") == 0 }) {
		t.Fatalf("stalled messages still hold %d bytes", metricInt(t, rel.metrics, "dhtrelay_read_budget_bytes "))
	}
	honest.ping(t)
	late, err := dialIdleClient(rel.ws)
	if err != nil {
		t.Fatalf("a new session once the budget came back: %v", err)
	}
	late.c.Close()
}

// TestAllowOrigin: a private relay takes sessions from its own web app's
// pages only; clients that are no page (no Origin) are still served.
func TestAllowOrigin(t *testing.T) {
	interop.Require(t)
	_, boot := interop.StartTestnet(t)
	rel := startRelay(t, "--bootstrap", boot, "--allow-origin", "https://app.example", "--metrics", "127.0.0.1:0")
	for _, c := range []struct {
		origin string
		ok     bool
	}{{"https://app.example", true}, {"https://evil.example", false}, {"", true}} {
		h := http.Header{}
		if c.origin != "" {
			h.Set("Origin", c.origin)
		}
		ic, err := dialIdleClientWith(websocket.DefaultDialer, rel.ws, h)
		if (err == nil) != c.ok {
			t.Fatalf("origin %q: %v, want allowed %v", c.origin, err, c.ok)
		}
		if ic != nil {
			ic.c.Close()
		}
	}
	if n := errorCountAt(t, rel.metrics, "origin"); n != 1 {
		t.Fatalf("%d refusals counted as origin, want 1", n)
	}
}

// TestSmallAllowanceBeforeHandshake: until its handshake, a client may
// send no large message: one of 1 MiB closes its connection at once, long
// before the handshake deadline, while after the handshake such messages
// pass (the client matrix echoes 8 MB).
func TestSmallAllowanceBeforeHandshake(t *testing.T) {
	interop.Require(t)
	_, boot := interop.StartTestnet(t)
	rel := startRelay(t, "--bootstrap", boot, "--handshake-timeout", "60s", "--metrics", "127.0.0.1:0")
	c, _, err := websocket.DefaultDialer.Dial(rel.ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A write cut short by a reset means the connection was closed
	// before the message was even written whole.
	if err := c.WriteMessage(websocket.BinaryMessage, make([]byte, 1<<20)); err == nil {
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				if isTimeout(err) {
					t.Fatal("a 1 MiB message before the handshake was taken")
				}
				break
			}
		}
	}
	await.Within(t, 10*time.Second, "the refusal counted as message_too_large", func() bool {
		return errorCountAt(t, rel.metrics, "message_too_large") == 1
	})
}

// TestWorkerBudget: clients that never read make the worker's streams
// hold what their peer sends; once they hold nine tenths of the worker's
// budget, a new connect is refused and counted, and once they are gone
// connects are served again.
func TestWorkerBudget(t *testing.T) {
	interop.Require(t)
	peer, boot := interop.StartTestnet(t)
	echo, source := interop.RandomSeed(), interop.RandomSeed()
	interop.RequireOK(t, "js listen", peer.Do("listen", echo))
	interop.RequireOK(t, "js source", peer.Do("listenSource", source, strconv.Itoa(1<<30)))
	const budget = 16 << 20
	rel := startRelayBinary(t, boot, "--worker-budget", strconv.Itoa(budget), "--metrics", "127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := goClient(ctx, relayUnderTest{ws: rel.ws}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	env := &hostileEnv{rel: rel, pid: rel.cmd.Process.Pid, source: keyOf(source).Public}
	stop := neverRead(t, env)
	if !await.Poll(30*time.Second, func() bool { return metricInt(t, rel.metrics, "dhtrelay_worker_held_bytes ") >= budget*9/10 }) {
		t.Fatalf("the worker holds %d bytes for clients that never read", metricInt(t, rel.metrics, "dhtrelay_worker_held_bytes "))
	}
	if err := echoOver(t, c, keyOf(echo).Public, 64); err == nil || !strings.Contains(err.Error(), "budget") {
		t.Fatalf("a connect with the worker's budget spent: %v", err)
	}
	if n := errorCountAt(t, rel.metrics, "worker_budget"); n == 0 {
		t.Fatal("the refusal was not counted as worker_budget")
	}
	if late, err := dialIdleClient(rel.ws); err == nil {
		late.c.Close()
		t.Fatal("a new session was opened with the worker's budget spent")
	}
	stop()
	await.True(t, "the streams of clients gone to give the budget back", func() bool {
		return metricInt(t, rel.metrics, "dhtrelay_worker_held_bytes ") <= budget/2
	})
	if err := echoOver(t, c, keyOf(echo).Public, 64); err != nil {
		t.Fatalf("a connect once the budget came back: %v", err)
	}
}

// TestWorkerCountsPeerMessages: a peer's message that the worker reads
// whole and sends on in parts counts in what the worker holds while the
// client does not take it, as the worker's budget has to see it: a
// client that never reads, writing three 6 MiB messages to an echoing JS
// peer, leaves the worker holding most of the third, read from UDX (so out
// of its buffers) and waiting for credit: 9.0 MiB held in all, where only
// the 4.0 MiB in UDX's buffers counted before.
func TestWorkerCountsPeerMessages(t *testing.T) {
	interop.Require(t)
	peer, boot := interop.StartTestnet(t)
	echo := interop.RandomSeed()
	interop.RequireOK(t, "js listen", peer.Do("listen", echo))
	rel := startRelayBinary(t, boot, "--metrics", "127.0.0.1:0")
	const size = 6 << 20
	ic := echoUnread(t, rel, keyOf(echo).Public, 3, size)
	// From here on the client reads nothing. The UDX stream's window
	// fills with what follows (udx.RecvBufferSize, 4 MiB, counted
	// before); the third message's rest comes on top.
	if !await.Poll(30*time.Second, func() bool {
		return metricInt(t, rel.metrics, "dhtrelay_worker_held_bytes ") >= udx.RecvBufferSize+size/2
	}) {
		t.Fatalf("the worker holds %d bytes with a peer's message waiting for a client that does not read", metricInt(t, rel.metrics, "dhtrelay_worker_held_bytes "))
	}
	ic.c.Close()
	await.True(t, "the message to be let go with its session", func() bool {
		return metricInt(t, rel.metrics, "dhtrelay_worker_held_bytes ") < 1<<20
	})
}

// TestWorkerBudgetFailsLongMessages: a stream opened while the worker's
// budget had room, on which a peer's message longer than the credit
// window arrives that would take the worker past nine tenths of its
// budget (here by itself: the rest the worker holds is sampled, and
// depends on when UDX's buffers were last counted), is failed and
// counted as worker_budget instead of holding the message past the
// budget for a client that does not read.
func TestWorkerBudgetFailsLongMessages(t *testing.T) {
	interop.Require(t)
	peer, boot := interop.StartTestnet(t)
	echo := interop.RandomSeed()
	interop.RequireOK(t, "js listen", peer.Do("listen", echo))
	const budget = 6 << 20
	rel := startRelayBinary(t, boot, "--worker-budget", strconv.Itoa(budget), "--metrics", "127.0.0.1:0")
	echoUnread(t, rel, keyOf(echo).Public, 3, 6<<20)
	if !await.Poll(30*time.Second, func() bool { return errorCountAt(t, rel.metrics, "worker_budget") > 0 }) {
		t.Fatalf("no stream failed on the worker's budget; the worker holds %d bytes", metricInt(t, rel.metrics, "dhtrelay_worker_held_bytes "))
	}
	await.True(t, "the failed stream to give its bytes back", func() bool {
		return metricInt(t, rel.metrics, "dhtrelay_worker_held_bytes ") < budget*9/10
	})
}

// TestWorkerBudgetTakesMessagesByTheirLength: a peer's message longer
// than the credit window counts in what the worker holds from when its
// length arrives, not once it is whole, and is refused then if it would
// spend the budget. Here a Go peer declares a 4 MiB message on each of
// three streams and never sends the rest; with a 6 MiB budget one such
// message fits, and the others are refused at once, though none
// completes. Counted only once whole, none was ever counted or refused,
// while each stream read what came of its message into memory.
func TestWorkerBudgetTakesMessagesByTheirLength(t *testing.T) {
	interop.Require(t)
	_, boot := interop.StartTestnet(t)
	const budget, declared = 6 << 20, 4 << 20
	rel := startRelayBinary(t, boot, "--worker-budget", strconv.Itoa(budget), "--metrics", "127.0.0.1:0")
	peer := goServer(t, boot, func(c *hyperdht.Conn) {
		// A frame's length, as SecretStream sends it ahead of a message,
		// and a little of the body.
		body := declared + secretstream.ABytes
		c.Raw.Write(append([]byte{byte(body), byte(body >> 8), byte(body >> 16)}, make([]byte, 16<<10)...))
		<-c.Raw.Done()
	})
	ic := openIdleClient(t, rel.ws)
	for alias := uint32(1); alias <= 3; alias++ {
		kp, _ := noise.GenerateKeyPair(rand.Reader)
		ic.send(&relay.Connect{Custodial: true, Alias: alias, PublicKey: kp.Public, SecretKey: kp.Secret, RemotePublicKey: peer.Public})
	}
	if !await.Poll(30*time.Second, func() bool {
		ic.ping(t)
		return errorCountAt(t, rel.metrics, "worker_budget") >= 2
	}) {
		t.Fatalf("%d streams refused on the worker's budget, want 2; the worker holds %d bytes",
			errorCountAt(t, rel.metrics, "worker_budget"), metricInt(t, rel.metrics, "dhtrelay_worker_held_bytes "))
	}
	if held := metricInt(t, rel.metrics, "dhtrelay_worker_held_bytes "); held < declared || held > budget*9/10 {
		t.Fatalf("the worker holds %d bytes with one %d-byte message declared and waiting, want that much and under nine tenths of %d", held, declared, budget)
	}
}

// echoUnread opens a custodial stream to the echoing peer key, writes n
// messages of size bytes on it and from then on reads nothing, so that
// the peer's echoes wait in the relay; it returns the client.
func echoUnread(t *testing.T, rel *relayBinary, key [32]byte, n, size int) *idleClient {
	t.Helper()
	ic := openIdleClient(t, rel.ws)
	opened := false
	ic.onMessage = func(typ uint64, _ []byte) { opened = opened || typ == uint64(relay.TypeOpen) }
	kp, _ := noise.GenerateKeyPair(rand.Reader)
	ic.send(&relay.Connect{Custodial: true, Alias: 1, PublicKey: kp.Public, SecretKey: kp.Secret, RemotePublicKey: key})
	for deadline := time.Now().Add(30 * time.Second); !opened; {
		if time.Now().After(deadline) {
			t.Fatal("the stream did not open")
		}
		ic.ping(t)
	}
	for range n {
		ic.send(&relay.Data{Alias: 1, Buffers: relay.MakeBuffers(make([]byte, size))})
	}
	return ic
}
