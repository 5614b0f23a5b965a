package dhtrpc

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/dhtrelay/dht-relay/internal/await"
)

func TestCongestionWindowFollowsDHTRPC(t *testing.T) {
	var c congestion
	for range maxWindow {
		if c.full() {
			t.Fatal("full before maxWindow sends in a slot")
		}
		c.send()
	}
	if !c.full() {
		t.Fatal("not full after maxWindow sends in one slot")
	}
	c.recv()
	if c.full() {
		t.Fatal("a reply did not give back its send")
	}
	c.send()
	c.drain()
	for range maxWindow - 1 {
		c.send()
	}
	if c.full() {
		t.Fatal("full below 2×maxWindow over the slots")
	}
	c.send()
	if !c.full() {
		t.Fatal("not full at 2×maxWindow over the slots")
	}
	for range windowSlots - 1 {
		c.drain()
	}
	if c.total != maxWindow || c.full() {
		t.Fatalf("after the first slot aged out: total %d, full %v", c.total, c.full())
	}
	c.drain()
	if c.total != 0 {
		t.Fatalf("after every slot aged out: total %d", c.total)
	}
	c.recv() // nothing sent in this slot: nothing to give back
	if c.total != 0 {
		t.Fatalf("recv on an empty slot: total %d", c.total)
	}
}

func TestFairQueueServesOwnersInTurn(t *testing.T) {
	var q fairQueue
	add := func(key string, n int) []*pending {
		var ps []*pending
		for range n {
			o, err := q.take(key)
			if err != nil {
				t.Fatal(err)
			}
			p := &pending{owner: o}
			q.push(p)
			ps = append(ps, p)
		}
		return ps
	}
	a := add("a", 4)
	b := add("b", 2)
	c := add("c", 1)
	q.remove(a[1]) // abandoned: never served
	q.give(a[1].owner)
	want := []*pending{a[0], b[0], c[0], a[2], b[1], a[3]}
	for i, w := range want {
		if got := q.pop(); got != w {
			t.Fatalf("pop %d: got %p, want %p", i, got, w)
		}
		q.give(w.owner)
	}
	if q.pop() != nil || q.waiting != 0 || q.ring != nil || len(q.owners) != 0 {
		t.Fatalf("queue not empty: waiting %d, owners %d", q.waiting, len(q.owners))
	}
}

func TestOwnerShareIsBounded(t *testing.T) {
	var q fairQueue
	for range maxHeldPerOwner {
		if _, err := q.take("flood"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := q.take("flood"); !errors.Is(err, ErrBusy) {
		t.Fatalf("over its share: %v", err)
	}
	if _, err := q.take("honest"); err != nil {
		t.Fatalf("another owner: %v", err)
	}
}

// silentPeer is a UDP socket on loopback that counts what it receives and
// answers nothing: a DHT node that stopped answering.
func silentPeer(t *testing.T) (netip.AddrPort, *atomic.Int64) {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var n atomic.Int64
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := c.ReadFromUDP(buf); err != nil {
				return
			}
			n.Add(1)
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).AddrPort(), &n
}

func waitHealth(t *testing.T, d *DHT, ok func(Health) bool) Health {
	t.Helper()
	var h Health
	if !await.Poll(10*time.Second, func() bool { h = d.Health(); return ok(h) }) {
		t.Fatalf("health never reached the state: %+v", h)
	}
	return h
}

func TestRepliesGiveTheWindowBack(t *testing.T) {
	nodes := goNetwork(t, 2, nil)
	d, to := nodes[1], nodes[0].ServerSocket().LocalAddr()
	// Far more requests than the window holds over all its slots, answered
	// at once on loopback: each reply makes room for the next.
	const n = 6 * maxWindow
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range n {
		wg.Go(func() {
			if _, err := d.Ping(context.Background(), to); err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d pings failed", failed.Load(), n)
	}
	d.mu.Lock()
	total := d.window.total
	d.mu.Unlock()
	if total != 0 {
		t.Fatalf("every request answered, yet %d sends still count against the window", total)
	}
}

func TestAbandonedRequestsAreNeverSent(t *testing.T) {
	d, err := New(Config{Host: lo})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	to, got := silentPeer(t)
	ctx, cancel := context.WithCancel(context.Background())
	const n = 4 * maxWindow
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { d.Ping(ctx, to) })
	}
	// The window takes maxWindow sends a slot; the rest wait for it.
	waitHealth(t, d, func(h Health) bool { return h.Held == n && h.Waiting > 0 })
	cancel()
	wg.Wait()
	if h := d.Health(); h.Held != 0 || h.Waiting != 0 {
		t.Fatalf("abandoned requests still held: %+v", h)
	}
	// Datagrams already on their way land first.
	time.Sleep(200 * time.Millisecond)
	sent := got.Load()
	// Long enough for two window slots and a retry: nothing more may go.
	time.Sleep(2*windowSlot + requestTimeout)
	if more := got.Load() - sent; more != 0 {
		t.Fatalf("%d datagrams sent after every request was abandoned", more)
	}
}

func TestAFullNodeRefusesAtOnce(t *testing.T) {
	d, err := New(Config{Host: lo})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	to, _ := silentPeer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	// Fill the node from owners that each take their whole share.
	for i := range maxHeld / maxHeldPerOwner {
		octx := WithOwner(ctx, Owner{Key: string(rune('a' + i))})
		for range maxHeldPerOwner {
			wg.Go(func() { d.Ping(octx, to) })
		}
	}
	waitHealth(t, d, func(h Health) bool { return h.Held == maxHeld })
	done := make(chan error, 1)
	go func() {
		_, err := d.Ping(WithOwner(context.Background(), Owner{Key: "late"}), to)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrBusy) {
			t.Fatalf("a request to a full node: %v, want ErrBusy", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a request to a full node neither failed nor returned")
	}
	if d.Stats().Busy == 0 {
		t.Fatal("the refusal was not counted")
	}
	// The node still sends: its clock and window are not stuck.
	before := d.Stats().RequestsSent
	waitHealth(t, d, func(Health) bool { return d.Stats().RequestsSent > before })
}

func TestAFloodDelaysOnlyItsOwner(t *testing.T) {
	nodes := goNetwork(t, 2, nil)
	d, live := nodes[1], nodes[0].ServerSocket().LocalAddr()
	silent, _ := silentPeer(t)
	ctx, cancel := context.WithCancel(WithOwner(context.Background(), Owner{Key: "flood"}))
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for range maxHeldPerOwner {
		wg.Go(func() { d.Ping(ctx, silent) })
	}
	waitHealth(t, d, func(h Health) bool { return h.Held >= maxHeldPerOwner })
	// The flood fills the window for many slots to come; an honest
	// request is served at the next turn, not behind the whole flood.
	if _, err := d.Ping(WithOwner(context.Background(), Owner{Key: "honest"}), live); err != nil {
		t.Fatal(err)
	}
	if h := d.Health(); h.Waiting < maxHeldPerOwner/2 {
		t.Fatalf("the honest request was served only after the flood drained: %+v", h)
	}
}

func TestHealthSaysWhyItStalled(t *testing.T) {
	now := time.Now()
	old := now.Add(-time.Minute)
	for _, c := range []struct {
		h    Health
		want bool
	}{
		{Health{}, false},
		{Health{Held: 3, LastSend: now, LastReply: now}, false},
		{Health{Held: 3, Waiting: 2, LastSend: old, LastReply: now}, true},
		{Health{Held: 3, LastSend: now, LastReply: old}, true},
	} {
		if got := c.h.Stalled(now, 10*time.Second) != ""; got != c.want {
			t.Errorf("%+v: stalled %v, want %v", c.h, got, c.want)
		}
	}
}

// BenchmarkRequestsVsJS measures the DHT requests a second one Go node
// sustains on a loopback JS testnet, beside one JS node on the same
// testnet, each keeping the same number of find_node queries for random
// targets running. Run it once:
// go test -run XXX -bench RequestsVsJS -benchtime 1x ./dhtrpc/
func BenchmarkRequestsVsJS(b *testing.B) {
	const seconds, queries = 5, 64
	tn := startTestnet(b, 10)
	d := joinGo(b, tn.bootstrap, false)
	var js struct {
		Requests, Responses float64
		Seconds             float64
	}
	for range b.N {
		before := d.Stats().RequestsSent
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), seconds*time.Second)
		var wg sync.WaitGroup
		for range queries {
			wg.Go(func() {
				for ctx.Err() == nil {
					var target [IDSize]byte
					rand.Read(target[:])
					d.FindNode(ctx, target)
				}
			})
		}
		wg.Wait()
		cancel()
		goRate := float64(d.Stats().RequestsSent-before) / time.Since(start).Seconds()
		tn.ask(b, fmt.Sprintf("load %d %d", seconds, queries), &js)
		jsRate := js.Requests / js.Seconds
		b.Logf("requests a second with %d queries running: Go node %.0f, JS node %.0f (%.2fx)", queries, goRate, jsRate, goRate/jsRate)
		b.ReportMetric(goRate, "go-requests/s")
		b.ReportMetric(jsRate, "js-requests/s")
		b.ReportMetric(goRate/jsRate, "x")
	}
}

func TestOwnerIsPaced(t *testing.T) {
	nodes := goNetwork(t, 2, nil)
	d, live := nodes[1], nodes[0].ServerSocket().LocalAddr()
	const burst = 3
	o := Owner{Key: "paced", Rate: rate.NewLimiter(rate.Every(time.Hour), burst)}
	ctx, cancel := context.WithCancel(WithOwner(context.Background(), o))
	for range burst {
		if _, err := d.Ping(ctx, live); err != nil {
			t.Fatal(err)
		}
	}
	before := d.Stats().RequestsSent
	done := make(chan error, 1)
	go func() {
		_, err := d.Ping(ctx, live)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("a request past the owner's pace went ahead: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("a paced request whose caller gave up: %v", err)
	}
	if sent := d.Stats().RequestsSent - before; sent != 0 {
		t.Fatalf("%d requests sent past the owner's pace", sent)
	}
	// Another owner is not held by that pace.
	if _, err := d.Ping(WithOwner(context.Background(), Owner{Key: "other"}), live); err != nil {
		t.Fatal(err)
	}
}
