package udx

import (
	"encoding/hex"
	"encoding/json"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/interop"
)

// impairment is how a lossyProxy mistreats datagrams: shares in percent,
// and a size above which every datagram is dropped (0: none), like a
// path with a small MTU.
type impairment struct{ drop, dup, reorder, maxSize int }

// lossyProxy forwards datagrams between a peer that sends to A() and the
// fixed address b, which it reaches from B(), dropping, duplicating and
// delaying a share of them in both directions.
type lossyProxy struct {
	pa, pb *net.UDPConn
	b      netip.AddrPort
	imp    impairment

	mu    sync.Mutex
	a     netip.AddrPort
	rnd   *rand.Rand
	stats map[string]int
}

func newLossyProxy(t testing.TB, b netip.AddrPort, imp impairment) *lossyProxy {
	lo := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	pa, err := net.ListenUDP("udp4", lo)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := net.ListenUDP("udp4", lo)
	if err != nil {
		t.Fatal(err)
	}
	p := &lossyProxy{pa: pa, pb: pb, b: b, imp: imp, rnd: rand.New(rand.NewPCG(7, 8)), stats: map[string]int{}}
	go p.pump(pa, pb, true)
	go p.pump(pb, pa, false)
	t.Cleanup(func() {
		pa.Close()
		pb.Close()
		p.mu.Lock()
		t.Logf("lossy proxy: %v", p.stats)
		p.mu.Unlock()
	})
	return p
}

func (p *lossyProxy) A() netip.AddrPort { return p.pa.LocalAddr().(*net.UDPAddr).AddrPort() }
func (p *lossyProxy) B() netip.AddrPort { return p.pb.LocalAddr().(*net.UDPAddr).AddrPort() }

func (p *lossyProxy) pump(in, out *net.UDPConn, fromA bool) {
	buf := make([]byte, 65536)
	for {
		n, from, err := in.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		pkt := append([]byte(nil), buf[:n]...)
		p.mu.Lock()
		if fromA {
			p.a = from
		}
		to := p.a
		if fromA {
			to = p.b
		}
		roll := p.rnd.IntN(100)
		imp := p.imp
		delay := time.Duration(5+p.rnd.IntN(15)) * time.Millisecond
		p.mu.Unlock()
		if !to.IsValid() {
			p.count("no-destination")
			continue
		}
		if fromA {
			p.count("a-to-b")
		} else {
			p.count("b-to-a")
		}
		switch {
		case imp.maxSize > 0 && n > imp.maxSize:
			p.count("too-big")
		case roll < imp.drop:
			p.count("dropped")
		case roll < imp.drop+imp.dup:
			p.count("duplicated")
			out.WriteToUDPAddrPort(pkt, to)
			out.WriteToUDPAddrPort(pkt, to)
		case roll < imp.drop+imp.dup+imp.reorder:
			p.count("delayed")
			time.AfterFunc(delay, func() { out.WriteToUDPAddrPort(pkt, to) })
		default:
			out.WriteToUDPAddrPort(pkt, to)
		}
	}
}

func (p *lossyProxy) set(imp impairment) {
	p.mu.Lock()
	p.imp = imp
	p.mu.Unlock()
}

func (p *lossyProxy) count(what string) {
	p.mu.Lock()
	p.stats[what]++
	p.mu.Unlock()
}

var lossy = impairment{drop: 3, dup: 2, reorder: 3}

// TestLossyGoToGo: 16 MB each way between two Go streams through drops,
// duplicates and reordering, intact.
func TestLossyGoToGo(t *testing.T) {
	size := 16 << 20
	if testing.Short() {
		size = 2 << 20
	}
	ua, ub := New(), New()
	sa, _ := ua.Listen(netip.MustParseAddrPort("127.0.0.1:0"), nil)
	sb, _ := ub.Listen(netip.MustParseAddrPort("127.0.0.1:0"), nil)
	defer sa.Close()
	defer sb.Close()
	p := newLossyProxy(t, sb.LocalAddr(), lossy)
	a, _ := ua.NewStream(1)
	b, _ := ub.NewStream(2)
	a.Connect(sa, 2, p.A())
	b.Connect(sb, 1, p.B())
	type res struct {
		sent, received string
		n              int64
		err            error
	}
	ch := make(chan res, 2)
	for _, s := range []*Stream{a, b} {
		go func() {
			sent, received, n, err := transferGo(s, size)
			ch <- res{hex.EncodeToString(sent.Sum(nil)), hex.EncodeToString(received.Sum(nil)), n, err}
		}()
	}
	r1, r2 := <-ch, <-ch
	for _, r := range []res{r1, r2} {
		if r.err != nil || r.n != int64(size) {
			t.Fatalf("transfer: %d bytes, %v", r.n, r.err)
		}
	}
	if r1.sent != r2.received || r2.sent != r1.received {
		t.Fatal("contents differ")
	}
}

// TestLossyGoToJS: 16 MB each way between Go and udx-native through the
// same impairments.
func TestLossyGoToJS(t *testing.T) {
	size := 16 << 20
	if testing.Short() {
		size = 2 << 20
	}
	js := interop.Start(t, "udx-peer.js", "1", strconv.Itoa(size), "transfer")
	line, err := js.ReadLineWithin(peerTimeout)
	if err != nil {
		t.Fatal(err)
	}
	var remote peerInfo
	json.Unmarshal([]byte(line), &remote)
	u := New()
	sock, _ := u.Listen(netip.MustParseAddrPort("127.0.0.1:0"), nil)
	defer sock.Close()
	p := newLossyProxy(t, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), remote.Port), lossy)
	s, _ := u.NewStream(u.RandomID())
	s.Connect(sock, remote.IDs[0], p.A())
	// The JS side answers through the proxy: it is told the proxy's port.
	b, _ := json.Marshal(peerInfo{Port: p.B().Port(), IDs: []uint32{s.ID()}})
	io.WriteString(js.Stdin, string(b)+"\n")
	var sent, received hash.Hash
	var n int64
	within(t, "the Go transfer", []*Stream{s}, func() { sent, received, n, err = transferGo(s, size) })
	if err != nil || n != int64(size) {
		t.Fatalf("Go: %d bytes, %v", n, err)
	}
	line, err = js.ReadLineWithin(peerTimeout)
	if err != nil {
		t.Fatal(err)
	}
	var r peerResult
	json.Unmarshal([]byte(line), &r)
	if r.Error != "" || r.ReceivedBytes != size {
		t.Fatalf("JS: %+v", r)
	}
	if r.Sent != hex.EncodeToString(received.Sum(nil)) || r.Received != hex.EncodeToString(sent.Sum(nil)) {
		t.Fatal("contents differ")
	}
}

// TestMTUProbing: on loopback probes raise the MTU to MaxMTU; on a path
// that drops datagrams over 1300 bytes the MTU stops below it and data
// still flows.
func TestMTUProbing(t *testing.T) {
	for _, c := range []struct {
		maxSize, wantMin, wantMax int
	}{{0, MaxMTU, MaxMTU}, {1300 - ipv4Overhead, BaseMTU + mtuProbeStep, 1300}} {
		ua, ub := New(), New()
		sa, _ := ua.Listen(netip.MustParseAddrPort("127.0.0.1:0"), nil)
		sb, _ := ub.Listen(netip.MustParseAddrPort("127.0.0.1:0"), nil)
		p := newLossyProxy(t, sb.LocalAddr(), impairment{maxSize: c.maxSize})
		a, _ := ua.NewStream(1)
		b, _ := ub.NewStream(2)
		a.Connect(sa, 2, p.A())
		b.Connect(sb, 1, p.B())
		// b speaks first so the proxy knows where a is.
		b.Write([]byte("hi"))
		b.CloseWrite()
		done := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, b)
			done <- err
		}()
		// Paced, so that no probe is lost to a full socket buffer.
		for range 300 {
			a.Write(make([]byte, 4<<10))
			time.Sleep(time.Millisecond)
		}
		a.CloseWrite()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if m := a.MTU(); m < c.wantMin || m > c.wantMax {
			t.Errorf("path limit %d: MTU %d, want %d..%d", c.maxSize, m, c.wantMin, c.wantMax)
		}
		sa.Close()
		sb.Close()
	}
}

// TestRetransmitAfterIdle: after a stream went idle with everything acked,
// a new burst that is lost entirely is still retransmitted.
func TestRetransmitAfterIdle(t *testing.T) {
	ua, ub := New(), New()
	sa, _ := ua.Listen(netip.MustParseAddrPort("127.0.0.1:0"), nil)
	sb, _ := ub.Listen(netip.MustParseAddrPort("127.0.0.1:0"), nil)
	defer sa.Close()
	defer sb.Close()
	p := newLossyProxy(t, sb.LocalAddr(), impairment{})
	a, _ := ua.NewStream(1)
	b, _ := ub.NewStream(2)
	a.Connect(sa, 2, p.A())
	b.Connect(sb, 1, p.B())
	a.Write([]byte("first"))
	buf := make([]byte, 64)
	if n, err := b.Read(buf); err != nil || string(buf[:n]) != "first" {
		t.Fatalf("first read %q %v", buf[:n], err)
	}
	time.Sleep(50 * time.Millisecond) // the ack arrives; nothing is outstanding
	p.set(impairment{drop: 100})
	a.Write([]byte("second"))
	time.Sleep(100 * time.Millisecond)
	p.set(impairment{})
	got := make(chan string, 1)
	go func() {
		n, _ := b.Read(buf)
		got <- string(buf[:n])
	}()
	if s := waitFor(t, got); s != "second" {
		t.Fatalf("second read %q", s)
	}
	if a.Stats().Timeouts == 0 {
		t.Fatal("recovered without a retransmission timeout")
	}
}
