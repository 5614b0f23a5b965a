package hyperdht

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/dhtrpc"
	"github.com/dhtrelay/dht-relay/internal/interop"
	"github.com/dhtrelay/dht-relay/internal/netlab"
	"github.com/dhtrelay/dht-relay/noise"
	"github.com/dhtrelay/dht-relay/udx"
)

// natEcho is what each cell of the NAT matrix sends and expects back.
const natEcho = 1 << 20

// natConnectTimeout bounds one cell's connect and echo; JS gives up on a
// holepunch well within it.
const natConnectTimeout = 60 * time.Second

// TestNATMatrix builds a lab (package netlab) with a JS testnet on its
// internet and, for each pair of NATs (open, consistent, random; random on
// one side at most), a client host and a server host behind them. In each
// it runs {JS, Go} clients against {JS, Go} servers with a 1 MB echo, and
// prints the table of outcomes.
//
// JS to JS is the reference: every cell must get through where it does,
// and fail with the same error code where it fails.
func TestNATMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("the NAT matrix takes minutes; it runs in the full suite, not under -short")
	}
	interop.Require(t)
	lab, inet := netlab.New(t)
	boot := labTestnet(t, inet)

	// shared: both hosts on one LAN behind one NAT of the client's kind,
	// which hairpins nothing: they must find each other on the LAN.
	// relay: the client names a blind relay ("js" or "go", on an open
	// host) to fall back on; two random NATs cannot punch, and get
	// through only that way. Two consistent NATs with a relay race the
	// punch against the pairing: JS clients drop a pairing that comes
	// after the punch won, while the server may have started over the
	// relay, and then stall (JS → JS too, with JS's own relay), so there
	// JS clients are no reference; Go clients bind such a pairing until
	// the server has moved, and must always get through.
	type pair struct {
		client, server netlab.NAT
		shared         bool
		relay          string
		goClientsOnly  bool
	}
	o, c, r := netlab.Open, netlab.Consistent, netlab.Random
	pairs := []pair{
		{o, o, false, "", false}, {c, o, false, "", false}, {o, c, false, "", false}, {c, c, false, "", false},
		{r, o, false, "", false}, {o, r, false, "", false}, {r, c, false, "", false}, {c, r, false, "", false},
		{c, c, true, "", false}, {r, r, true, "", false},
		{r, r, false, "", false}, {r, r, false, "js", false}, {r, r, false, "go", false},
		{c, c, false, "js", true}, {c, c, false, "go", true},
	}
	name := func(p pair) (string, string) {
		switch {
		case p.shared:
			return "same " + p.client.String(), "same " + p.server.String()
		case p.relay != "":
			return p.client.String() + " (" + p.relay + " relay)", p.server.String()
		}
		return p.client.String(), p.server.String()
	}
	relays := map[string]*[32]byte{"js": startNATRelay(t, lab.AddHost(o), "js", boot), "go": startNATRelay(t, lab.AddHost(o), "go", boot)}
	impls := []string{"js", "go"}
	var mu sync.Mutex
	outcome := map[string]string{} // "client/server/cnat/snat" → "ok" or the error
	saw := map[string]string{}     // and what the server said of its connections
	key := func(c, s string, p pair) string {
		cn, sn := name(p)
		return fmt.Sprintf("%s/%s/%s/%s", c, s, cn, sn)
	}

	t.Run("cells", func(t *testing.T) {
		for _, p := range pairs {
			for _, ci := range impls {
				for _, si := range impls {
					// Hosts are made here, in order: the lab is not safe
					// for concurrent use.
					ch := lab.AddHost(p.client)
					var sh *netlab.Host
					if p.shared {
						sh = lab.AddNeighbour(ch)
					} else {
						sh = lab.AddHost(p.server)
					}
					t.Run(key(ci, si, p), func(t *testing.T) {
						t.Parallel()
						seed := make([]byte, 32)
						rand.Read(seed)
						pk, serverSaw := startNATServer(t, sh, si, boot, seed)
						res := runNATClient(t, ch, ci, boot, pk, relays[p.relay])
						mu.Lock()
						outcome[key(ci, si, p)] = res
						// What the server saw, so that a failure explains
						// itself from both ends.
						saw[key(ci, si, p)] = strings.TrimSpace(serverSaw())
						mu.Unlock()
					})
				}
			}
		}
	})

	var table strings.Builder
	fmt.Fprintf(&table, "%-22s %-16s %-24s %-24s %-24s %-24s\n", "client NAT", "server NAT", "JS → JS", "Go → JS", "JS → Go", "Go → Go")
	for _, p := range pairs {
		ref := outcome[key("js", "js", p)]
		cn, sn := name(p)
		fmt.Fprintf(&table, "%-22s %-16s %-24s", cn, sn, short(ref))
		for _, c := range [][2]string{{"go", "js"}, {"js", "go"}, {"go", "go"}} {
			got := outcome[key(c[0], c[1], p)]
			cn, sn := name(p)
			switch {
			case p.goClientsOnly && c[0] == "go" && got != "ok":
				t.Errorf("%s → %s, %s client, %s server: %q; the server saw %q", c[0], c[1], cn, sn, got, saw[key(c[0], c[1], p)])
			case !p.goClientsOnly && short(got) != short(ref):
				t.Errorf("%s → %s, %s client, %s server: %q where JS → JS gives %q; the server saw %q", c[0], c[1], cn, sn, got, ref, saw[key(c[0], c[1], p)])
			}
			fmt.Fprintf(&table, " %-24s", short(got))
		}
		table.WriteString("\n")
	}
	t.Logf("NAT matrix (1 MB echo):\n%s", table.String())
}

// labTestnet starts a JS testnet of 8 nodes on the lab's internet host
// and returns its bootstrap address.
func labTestnet(t *testing.T, inet *netlab.Host) netip.AddrPort {
	t.Helper()
	bp := interop.StartIn(t, inet.NS, "natlab-peer.js", "bootstrap", inet.Addr.String(), "8")
	line, err := bp.ReadLineWithin(60 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var b struct{ Bootstrap string }
	if err := json.Unmarshal([]byte(line), &b); err != nil {
		t.Fatalf("bootstrap: %v: %s", err, line)
	}
	return netip.MustParseAddrPort(b.Bootstrap)
}

// short is an outcome's error code, or ok.
func short(outcome string) string {
	if outcome == "ok" || outcome == "" {
		return outcome
	}
	code, _, _ := strings.Cut(outcome, ":")
	return code
}

// startNATServer starts an echo server (impl "js" or "go") on host, keyed
// by seed, and returns its public key once it listens.
func startNATServer(t *testing.T, host *netlab.Host, impl string, boot netip.AddrPort, seed []byte) ([32]byte, func() string) {
	t.Helper()
	kp := noise.KeyPairFromSeed([32]byte(seed))
	if impl == "js" {
		p := interop.StartIn(t, host.NS, "natlab-peer.js", "server", boot.String(), hex.EncodeToString(seed))
		line, err := p.ReadLineWithin(natConnectTimeout)
		if err != nil || !strings.Contains(line, `"listening":true`) {
			t.Fatalf("js server: %s %v", line, err)
		}
		return kp.Public, p.Stderr
	}
	n := labNode(t, host, boot)
	ctx, cancel := context.WithTimeout(context.Background(), natConnectTimeout)
	defer cancel()
	srv, err := n.Listen(ctx, ServerConfig{KeyPair: &kp})
	if err != nil {
		t.Fatalf("go server: %v", err)
	}
	var mu sync.Mutex
	var seen strings.Builder
	say := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(&seen, format, args...)
		mu.Unlock()
	}
	go func() {
		for {
			c, err := srv.Accept(context.Background())
			if err != nil {
				return
			}
			say("connection: stream to %v\n", c.Raw.RemoteAddr())
			go func() {
				n, err := io.Copy(c, c)
				say("closed: stream to %v, %d bytes echoed, %v; %+v\n", c.Raw.RemoteAddr(), n, err, c.Raw.Stats())
				c.Close()
			}()
		}
	}()
	return kp.Public, func() string {
		mu.Lock()
		defer mu.Unlock()
		return seen.String()
	}
}

// startNATRelay starts a blind relay (impl "js" or "go") on host and
// returns its public key once it listens.
func startNATRelay(t *testing.T, host *netlab.Host, impl string, boot netip.AddrPort) *[32]byte {
	t.Helper()
	seed := make([]byte, 32)
	rand.Read(seed)
	kp := noise.KeyPairFromSeed([32]byte(seed))
	if impl == "js" {
		p := interop.StartIn(t, host.NS, "natlab-peer.js", "relay", boot.String(), hex.EncodeToString(seed))
		line, err := p.ReadLineWithin(natConnectTimeout)
		if err != nil || !strings.Contains(line, `"listening":true`) {
			t.Fatalf("js relay: %s %v", line, err)
		}
		return &kp.Public
	}
	n := labNode(t, host, boot)
	// A blind relay is a public node: peers must reach it without
	// punching, so it serves once it has proved it is reachable.
	for deadline := time.Now().Add(natConnectTimeout); n.DHT().Firewalled(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("go relay: still firewalled on an open host")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), natConnectTimeout)
	defer cancel()
	srv, err := n.Listen(ctx, ServerConfig{KeyPair: &kp})
	if err != nil {
		t.Fatalf("go relay: %v", err)
	}
	go ServeBlindRelay(context.Background(), srv)
	return &kp.Public
}

// runNATClient connects from host (impl "js" or "go") to pk, through the
// blind relay relay if punching fails and relay is not nil, echoes
// natEcho bytes and returns "ok" or the error.
func runNATClient(t *testing.T, host *netlab.Host, impl string, boot netip.AddrPort, pk [32]byte, relay *[32]byte) string {
	t.Helper()
	if impl == "js" {
		args := []string{"client", boot.String(), hex.EncodeToString(pk[:]), fmt.Sprint(natEcho)}
		if relay != nil {
			args = append(args, hex.EncodeToString(relay[:]))
		}
		p := interop.StartIn(t, host.NS, "natlab-peer.js", args...)
		line, err := p.ReadLineWithin(natConnectTimeout + 30*time.Second)
		if err != nil {
			return "no answer: " + err.Error()
		}
		var r struct {
			OK    bool
			Error string
		}
		json.Unmarshal([]byte(line), &r)
		if r.OK {
			return "ok"
		}
		return r.Error
	}
	n := labNode(t, host, boot)
	ctx, cancel := context.WithTimeout(context.Background(), natConnectTimeout)
	defer cancel()
	kp, _ := noise.GenerateKeyPair(rand.Reader)
	c, err := n.Connect(ctx, pk, ClientConfig{KeyPair: &kp, RelayThrough: relay})
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	data := make([]byte, natEcho)
	rand.Read(data)
	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		wrote <- err
	}()
	back := make([]byte, len(data))
	stuck := time.AfterFunc(natConnectTimeout, func() { c.Close() })
	defer stuck.Stop()
	if n, err := io.ReadFull(c, back); err != nil {
		// Say where a stalled echo stood, so that a failure explains
		// itself: how far each way, and what the stream saw.
		werr := "still writing"
		select {
		case err := <-wrote:
			werr = fmt.Sprintf("write returned %v", err)
		default:
		}
		return fmt.Sprintf("echo: %v after %d of %d bytes back; %s; stream to %v: %+v",
			err, n, len(data), werr, c.Raw.RemoteAddr(), c.Raw.Stats())
	}
	if !bytes.Equal(back, data) {
		return "echo differs"
	}
	return "ok"
}

// labNode starts a Go node inside host's namespace and joins the lab's
// testnet.
func labNode(t *testing.T, host *netlab.Host, boot netip.AddrPort) *Node {
	t.Helper()
	// Every socket of the node, the holepunch sockets it makes later
	// included, binds inside the host's namespace.
	u := udx.NewIn(host.Do)
	n, err := New(Config{DHT: dhtrpc.Config{Bootstrap: []netip.AddrPort{boot}, UDX: u}})
	if err != nil {
		t.Fatalf("go node in %s: %v", host.NS, err)
	}
	t.Cleanup(func() { n.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), natConnectTimeout)
	defer cancel()
	if err := n.Bootstrap(ctx); err != nil {
		t.Fatalf("go node bootstrap: %v", err)
	}
	return n
}
