package dhtrpc

import (
	"context"
	"crypto/rand"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/compact"
	"github.com/dhtrelay/dht-relay/internal/await"
)

var lo = netip.MustParseAddr("127.0.0.1")

// goNetwork starts a Go bootstrapper and n-1 persistent Go nodes joined
// through it (or through extra bootstrap nodes).
func goNetwork(tb testing.TB, n int, bootstrap []netip.AddrPort) []*DHT {
	return goNetworkHandling(tb, n, bootstrap, nil)
}

// goNetworkHandling is goNetwork with a request handler on every node.
func goNetworkHandling(tb testing.TB, n int, bootstrap []netip.AddrPort, onRequest func(*IncomingRequest) bool) []*DHT {
	tb.Helper()
	var nodes []*DHT
	if len(bootstrap) == 0 {
		first, err := New(Config{Host: lo, Bootstrapper: true, OnRequest: onRequest})
		if err != nil {
			tb.Fatal(err)
		}
		nodes = append(nodes, first)
		bootstrap = []netip.AddrPort{first.ServerSocket().LocalAddr()}
	}
	tb.Cleanup(func() {
		for _, d := range nodes {
			d.Close()
		}
	})
	for len(nodes) < n {
		d, err := New(Config{Host: lo, Persistent: true, Bootstrap: bootstrap, OnRequest: onRequest})
		if err != nil {
			tb.Fatal(err)
		}
		nodes = append(nodes, d)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = d.Bootstrap(ctx)
		cancel()
		if err != nil {
			tb.Fatal(err)
		}
		if !d.Persistent() {
			tb.Fatalf("node %d did not become persistent", len(nodes))
		}
	}
	return nodes
}

// trueClosest is the K closest persistent ids among nodes, by brute force.
func trueClosest(nodes []*DHT, target [IDSize]byte, skip *DHT) []netip.AddrPort {
	var all []*DHT
	for _, d := range nodes {
		if d != skip {
			all = append(all, d)
		}
	}
	slices.SortFunc(all, func(a, b *DHT) int {
		ia, ib := a.ID(), b.ID()
		if closer(&target, &ia, &ib) {
			return -1
		}
		return 1
	})
	var out []netip.AddrPort
	for _, d := range all[:min(K, len(all))] {
		out = append(out, d.ServerSocket().LocalAddr())
	}
	return out
}

func addrsOf(rs []Reply) []netip.AddrPort {
	var out []netip.AddrPort
	for _, r := range rs {
		out = append(out, r.From)
	}
	return out
}

// TestGoNetworkConverges: in a network of 200 Go nodes a query from any node
// finds exactly the K nodes whose ids are closest to the target.
func TestGoNetworkConverges(t *testing.T) {
	nodes := goNetwork(t, 200, nil)
	for i := range 10 {
		var target [IDSize]byte
		rand.Read(target[:])
		from := nodes[(i*7)%len(nodes)]
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		got, err := from.FindNode(ctx, target)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		want := trueClosest(nodes, target, from)
		if fmt.Sprint(addrsOf(got)) != fmt.Sprint(want) {
			t.Errorf("query %d: found %v\nwant %v", i, addrsOf(got), want)
		}
	}
}

// TestMixedNetwork: five Go persistent nodes join a five-node JS testnet;
// Go and JS queries find the same closest nodes, Go nodes included.
func TestMixedNetwork(t *testing.T) {
	tn := startTestnet(t, 5)
	gos := goNetwork(t, 5, []netip.AddrPort{tn.bootstrap})
	for i := range 8 {
		var target [IDSize]byte
		rand.Read(target[:])
		from := gos[i%len(gos)]
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		got, err := from.FindNode(ctx, target)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		var js struct{ Closest []string }
		tn.ask(t, "query "+fmt.Sprintf("%x", target), &js)
		self := from.ServerSocket().LocalAddr().String()
		var jsOthers []string
		goNodes := 0
		for _, a := range js.Closest {
			if a != self {
				jsOthers = append(jsOthers, a)
			}
			for _, g := range gos {
				if a == g.ServerSocket().LocalAddr().String() {
					goNodes++
				}
			}
		}
		if fmt.Sprint(addrsOf(got)) != fmt.Sprint(asAddrs(jsOthers)) {
			t.Errorf("target %d: Go %v\nJS %v", i, addrsOf(got), jsOthers)
		}
		if goNodes < 4 {
			t.Errorf("target %d: the JS query found %d of the 5 Go nodes", i, goNodes)
		}
	}
}

func asAddrs(ss []string) []netip.AddrPort {
	var out []netip.AddrPort
	for _, s := range ss {
		out = append(out, netip.MustParseAddrPort(s))
	}
	return out
}

// BenchmarkQuery reports query latency and requests per query in Go
// networks of 50, 100 and 200 nodes on loopback.
func BenchmarkQuery(b *testing.B) {
	for _, n := range []int{50, 100, 200} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			nodes := goNetwork(b, n, nil)
			var sent uint64
			var worst time.Duration
			wrong := 0
			b.ResetTimer()
			for i := range b.N {
				var target [IDSize]byte
				rand.Read(target[:])
				from := nodes[i%len(nodes)]
				before := from.Stats().RequestsSent
				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				got, err := from.FindNode(ctx, target)
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				worst = max(worst, time.Since(start))
				sent += from.Stats().RequestsSent - before
				if fmt.Sprint(addrsOf(got)) != fmt.Sprint(trueClosest(nodes, target, from)) {
					wrong++
				}
			}
			b.ReportMetric(float64(sent)/float64(b.N), "requests/query")
			b.ReportMetric(float64(worst.Microseconds())/1000, "worst-ms")
			b.ReportMetric(math.Round(100*float64(b.N-wrong)/float64(b.N)), "%exact")
		})
	}
}

// TestFullBucketEvictsOnlyTheDead: a newcomer to a full bucket replaces the
// oldest contact only when that contact no longer answers.
func TestFullBucketEvictsOnlyTheDead(t *testing.T) {
	d, err := New(Config{Host: lo, Bootstrapper: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	live, err := New(Config{Host: lo, Bootstrapper: true})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	// Fill one bucket with K contacts: the live node first (oldest), then
	// K-1 fake ids at an address nobody answers on.
	self := d.ID()
	liveID := live.ID()
	bucket := commonPrefix(&self, &liveID)
	dead := netip.MustParseAddrPort("127.0.0.1:9")
	d.mu.Lock()
	d.table.add(Contact{ID: liveID, Addr: live.ServerSocket().LocalAddr(), seen: time.Now().Add(-time.Hour)})
	for len(d.table.rows[bucket]) < K {
		id := self
		var r [IDSize]byte
		rand.Read(r[:])
		// Same prefix as the bucket, differing at bit `bucket`.
		for i := range id {
			id[i] = r[i]
		}
		copy(id[:], self[:])
		id[bucket/8] ^= 0x80 >> (bucket % 8)
		for i := bucket/8 + 1; i < IDSize; i++ {
			id[i] = r[i]
		}
		d.table.add(Contact{ID: id, Addr: dead, seen: time.Now()})
	}
	newcomer := liveID
	newcomer[IDSize-1] ^= 1
	d.addFromNetwork(&newcomer, netip.MustParseAddrPort("127.0.0.1:10"), netip.AddrPort{}, false)
	d.mu.Unlock()
	time.Sleep(500 * time.Millisecond)
	d.mu.Lock()
	kept := d.table.has(liveID) && !d.table.has(newcomer)
	d.mu.Unlock()
	if !kept {
		t.Fatal("a live oldest contact was evicted")
	}
	// The live node answered and is fresh again; the oldest is now a dead
	// contact, and the newcomer replaces it.
	d.mu.Lock()
	d.addFromNetwork(&newcomer, netip.MustParseAddrPort("127.0.0.1:10"), netip.AddrPort{}, false)
	d.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d.mu.Lock()
		in, n := d.table.has(newcomer), len(d.table.rows[bucket])
		stillLive := d.table.has(liveID)
		d.mu.Unlock()
		if in {
			if n != K || !stillLive {
				t.Fatalf("bucket holds %d, live node kept: %v", n, stillLive)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a dead oldest contact was not replaced")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMalformedDatagramsAreHarmless: garbage, truncated and forged
// messages are dropped and the node keeps answering.
func TestMalformedDatagramsAreHarmless(t *testing.T) {
	d, err := New(Config{Host: lo, Bootstrapper: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	c, err := New(Config{Host: lo})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	to := d.ServerSocket().LocalAddr()
	valid := (&Request{TID: 1, To: to, Internal: true, Command: CmdFindNode, Target: &[IDSize]byte{}}).AppendBinary(nil)
	junk := [][]byte{{}, {3}, {0x13}, {3, 0xff}, valid[:len(valid)/2], append([]byte{0x13}, valid[1:]...), make([]byte, 1500)}
	for i := range 200 {
		var p [64]byte
		rand.Read(p[:])
		p[0] = []byte{0x03, 0x13}[i%2]
		junk = append(junk, p[:1+i%63])
	}
	for _, j := range junk {
		c.ClientSocket().Send(j, to)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx, to); err != nil {
		t.Fatalf("ping after garbage: %v", err)
	}
}

// TestQueryCommit: a query for a user command collects tokens, the commit
// presents them and is accepted; a forged token is refused.
func TestQueryCommit(t *testing.T) {
	const cmd = 99
	committed := make(chan netip.AddrPort, 64)
	nodes := goNetworkHandling(t, 15, nil, func(r *IncomingRequest) bool {
		if r.Command != cmd {
			return false
		}
		if r.Token != nil {
			committed <- r.From
		}
		r.Reply(nil)
		return true
	})
	var target [IDSize]byte
	rand.Read(target[:])
	from := nodes[3]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	replies, err := from.Query(ctx, target, false, cmd, nil, nil)
	if err != nil || len(replies) == 0 {
		t.Fatalf("query: %d replies, %v", len(replies), err)
	}
	n, err := from.Commit(ctx, replies, false, cmd, target, []byte("v"))
	if err != nil || n != len(replies) {
		t.Fatalf("commit accepted by %d of %d: %v", n, len(replies), err)
	}
	if len(committed) != len(replies) {
		t.Fatalf("%d handlers saw a token, want %d", len(committed), len(replies))
	}
	forged := replies[0]
	bad := *forged.Response
	bad.Token = &[IDSize]byte{1}
	forged.Response = &bad
	if _, err := from.Commit(ctx, []Reply{forged}, false, cmd, target, nil); err != RemoteError(ErrInvalidToken) {
		t.Fatalf("forged token: %v", err)
	}
}

// TestAdaptiveNodeTurnsPersistent: a node without Persistent stops being
// firewalled when its server socket proves reachable, turns persistent
// only after staying stable, and goes back to ephemeral after a wake-up.
func TestAdaptiveNodeTurnsPersistent(t *testing.T) {
	nodes := goNetwork(t, 6, nil)
	d, err := New(Config{Host: lo, Bootstrap: []netip.AddrPort{nodes[0].ServerSocket().LocalAddr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	firewalled := d.firewalled
	d.stableTicks = 1 // the stable period has passed
	d.mu.Unlock()
	if firewalled || d.Persistent() {
		t.Fatalf("after bootstrap: firewalled %v persistent %v, want reachable and ephemeral", firewalled, d.Persistent())
	}
	d.tick(time.Now())
	await.Within(t, 10*time.Second, "the stable adaptive node to turn persistent", d.Persistent)
	if d.ID() != NodeID(d.ServerSocket().LocalAddr()) {
		t.Fatal("persistent id is not the id of the server address")
	}
	d.tick(time.Now().Add(time.Minute)) // a gap: the machine slept
	if d.Persistent() {
		t.Fatal("still persistent after a wake-up")
	}
}

// TestDownHintRemovesDeadNode: a node told that a table node is down pings
// it and drops it when it does not answer.
func TestDownHintRemovesDeadNode(t *testing.T) {
	a, err := New(Config{Host: lo, Bootstrapper: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := New(Config{Host: lo})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	dead := netip.MustParseAddrPort("127.0.0.1:9")
	a.mu.Lock()
	a.table.add(Contact{ID: NodeID(dead), Addr: dead, seen: time.Now()})
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, _, err := b.Request(ctx, a.ServerSocket().LocalAddr(), true, CmdDownHint, nil, compactAddr(dead), nil); err != nil {
		t.Fatal(err)
	}
	await.Within(t, 10*time.Second, "the hinted dead node to leave the table", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return !a.table.has(NodeID(dead))
	})
}

func compactAddr(a netip.AddrPort) []byte { return compact.AppendIPv4(nil, a) }
