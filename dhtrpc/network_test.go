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
)

var lo = netip.MustParseAddr("127.0.0.1")

// goNetwork starts a Go bootstrapper and n-1 persistent Go nodes joined
// through it (or through extra bootstrap nodes).
func goNetwork(tb testing.TB, n int, bootstrap []netip.AddrPort) []*DHT {
	tb.Helper()
	var nodes []*DHT
	if len(bootstrap) == 0 {
		first, err := New(Config{Host: lo, Bootstrapper: true})
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
		d, err := New(Config{Host: lo, Persistent: true, Bootstrap: bootstrap})
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

// TestGoNetworkConverges: in a network of 60 Go nodes a query from any node
// finds exactly the K nodes whose ids are closest to the target.
func TestGoNetworkConverges(t *testing.T) {
	nodes := goNetwork(t, 60, nil)
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
