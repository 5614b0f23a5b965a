package dhtrpc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/interop"
)

type testnet struct {
	p         *interop.Process
	bootstrap netip.AddrPort
	nodes     []netip.AddrPort
}

func startTestnet(t testing.TB, size int) *testnet {
	t.Helper()
	p := interop.Start(t, "dht-testnet.js", strconv.Itoa(size))
	line, err := p.ReadLineWithin(60 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Bootstrap string
		Nodes     []string
	}
	if err := json.Unmarshal([]byte(line), &info); err != nil {
		t.Fatal(err)
	}
	tn := &testnet{p: p, bootstrap: netip.MustParseAddrPort(info.Bootstrap)}
	for _, n := range info.Nodes {
		tn.nodes = append(tn.nodes, netip.MustParseAddrPort(n))
	}
	return tn
}

func (tn *testnet) ask(t testing.TB, cmd string, out any) {
	t.Helper()
	io.WriteString(tn.p.Stdin, cmd+"\n")
	line, err := tn.p.ReadLineWithin(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(line), out); err != nil {
		t.Fatalf("%s: %s: %v", cmd, line, err)
	}
}

func joinGo(t testing.TB, bootstrap netip.AddrPort, persistent bool) *DHT {
	t.Helper()
	d, err := New(Config{Bootstrap: []netip.AddrPort{bootstrap}, Host: netip.MustParseAddr("127.0.0.1"), Persistent: persistent})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestJoinJSTestnet: a Go node joins a 10-node JS testnet, becomes
// persistent through the PING_NAT test, answers JS pings, is learned by JS
// nodes, and finds the same closest nodes as a JS query for random targets.
func TestJoinJSTestnet(t *testing.T) {
	tn := startTestnet(t, 10)
	d := joinGo(t, tn.bootstrap, true)
	server := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), d.ServerSocket().LocalAddr().Port())
	if !d.Persistent() {
		t.Fatal("Go node did not become persistent")
	}
	if d.ID() != NodeID(server) {
		t.Fatal("persistent id is not the id of the server address")
	}
	var pong struct {
		OK    bool
		Error string
	}
	tn.ask(t, "ping "+server.String(), &pong)
	if !pong.OK {
		t.Fatalf("JS ping of the Go node: %s", pong.Error)
	}
	var knows struct{ Knows int }
	for deadline := time.Now().Add(10 * time.Second); ; {
		tn.ask(t, "knows "+server.String(), &knows)
		if knows.Knows > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if knows.Knows == 0 {
		t.Fatal("no JS node has the Go node in its routing table")
	}
	t.Logf("%d JS nodes route through the Go node; testnet %v", knows.Knows, tn.nodes)

	for i := range 10 {
		var target [IDSize]byte
		rand.Read(target[:])
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		goClosest, err := d.FindNode(ctx, target)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		var js struct{ Closest []string }
		tn.ask(t, "query "+hex.EncodeToString(target[:]), &js)
		// The JS client also finds the Go node; the Go node does not list
		// itself.
		var jsOthers []string
		for _, a := range js.Closest {
			if a != server.String() {
				jsOthers = append(jsOthers, a)
			}
		}
		var goAddrs []string
		for _, r := range goClosest {
			goAddrs = append(goAddrs, r.From.String())
		}
		if fmt.Sprint(goAddrs) != fmt.Sprint(jsOthers) {
			t.Errorf("target %d: Go closest %v, JS closest %v", i, goAddrs, jsOthers)
		}
	}
}
