package routing

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"testing"
	"testing/synctest"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/dhtrelay/dht-relay/compact"
	"github.com/dhtrelay/dht-relay/internal/await"
	"github.com/dhtrelay/dht-relay/internal/natsfeed"
	"github.com/dhtrelay/dht-relay/internal/natstest"
	"github.com/dhtrelay/dht-relay/relay"
)

func TestFrameRoundTrip(t *testing.T) {
	m := &relay.Data{Alias: 7, Buffers: relay.MakeBuffers([]byte("hello"))}
	b := AppendFrame(nil, Kind(m.Type()), 300, m.AppendPayload(nil))
	f, err := DecodeFrame(b)
	if err != nil || f.Seq != 300 || f.Kind != Kind(relay.TypeData) {
		t.Fatalf("%+v %v", f, err)
	}
	got, err := f.Message()
	if err != nil || got.(*relay.Data).Alias != 7 || first(got.(*relay.Data).Buffers) != "hello" {
		t.Fatalf("%+v %v", got, err)
	}
	for _, bad := range [][]byte{nil, {28, 1}, {byte(KindMessage) + 1, 1}, {byte(KindCredit)}} {
		if _, err := DecodeFrame(bad); !errors.Is(err, ErrBadFrame) {
			t.Errorf("%x: %v", bad, err)
		}
	}
	c, err := DecodeCredit(AppendCredit(nil, Credit{Alias: 9, Bytes: 1 << 40}))
	if err != nil || c != (Credit{9, 1 << 40}) {
		t.Fatalf("%+v %v", c, err)
	}
	g, err := DecodeGone(AppendGone(nil, Gone{Alias: 1, ClientAlias: 2}))
	if err != nil || g != (Gone{1, 2}) {
		t.Fatalf("%+v %v", g, err)
	}
	msg, err := DecodeMessage(AppendMessage(nil, Message{Alias: 3, Bytes: 1 << 20}))
	if err != nil || msg != (Message{3, 1 << 20}) {
		t.Fatalf("%+v %v", msg, err)
	}
	o := OpenRequest{Session: "abc", Edge: "edge-1", Handshake: relay.Handshake{Custodial: true, PublicKey: [32]byte{1}, SecretKey: [64]byte{2}}}
	o2, err := DecodeOpenRequest(o.Encode())
	if err != nil || o2 != o {
		t.Fatalf("%+v %v", o2, err)
	}
	o.Session = "a.b"
	if _, err := DecodeOpenRequest(o.Encode()); err == nil {
		t.Fatal("a session id that is not a subject token was accepted")
	}
}

func FuzzDecodeFrame(f *testing.F) {
	f.Add(AppendFrame(nil, Kind(relay.TypeData), 1, (&relay.Data{Alias: 1, Buffers: relay.MakeBuffers([]byte{1, 2})}).AppendPayload(nil)))
	f.Add(AppendFrame(nil, KindCredit, 2, AppendCredit(nil, Credit{1, 65536})))
	f.Add(AppendFrame(nil, KindGone, 3, AppendGone(nil, Gone{1, 2})))
	f.Add(AppendFrame(nil, KindSync, 4, []byte{syncAsk}))
	f.Add(AppendFrame(nil, KindMessage, 5, AppendMessage(nil, Message{1, 100_000})))
	f.Add((&OpenRequest{Session: "s", Edge: "e", Handshake: relay.Handshake{Custodial: true}}).Encode())
	f.Fuzz(func(t *testing.T, p []byte) {
		if fr, err := DecodeFrame(p); err == nil {
			switch fr.Kind {
			case KindCredit:
				DecodeCredit(fr.Payload)
			case KindGone:
				DecodeGone(fr.Payload)
			case KindMessage:
				DecodeMessage(fr.Payload)
			case KindBye, KindSync:
			default:
				fr.Message()
			}
		}
		DecodeOpenRequest(p)
	})
}

// TestLargestDataFrameIsPooled: a frame of the most stream data one
// carries, with the largest alias and sequence number, fits natsfeed's
// pooled buffers, so that stream data never takes fresh memory.
func TestLargestDataFrameIsPooled(t *testing.T) {
	m := &relay.Data{Alias: math.MaxUint32, Buffers: relay.MakeBuffers(make([]byte, MaxChunk))}
	f := m.AppendPayload(AppendFrame(nil, Kind(m.Type()), math.MaxUint64, nil))
	if len(f) > natsfeed.MaxPooled {
		t.Fatalf("a %d-byte frame does not fit the %d bytes pooled", len(f), natsfeed.MaxPooled)
	}
}

// TestSendInPlaceEncodesAsSendMessage: a Data message sent from in place,
// as one buffer's bytes or as a batch of encoded buffers, arrives as the
// same frame as one encoded whole, with the largest alias and sequence
// number, and the room in front is enough.
func TestSendInPlaceEncodesAsSendMessage(t *testing.T) {
	nc := startNATS(t)
	a, err := NewEndpoint(nc, "test.a", func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewEndpoint(nc, "test.b", func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 4)
	la := a.Attach("s1", "test.b.s1", func(Frame) {}, func(error) {})
	lb := b.Attach("s1", "test.a.s1", func(f Frame) {
		got <- AppendFrame(nil, f.Kind, f.Seq, f.Payload)
		f.Lease.Release()
	}, func(err error) { t.Error(err) })
	la.seqOut, lb.seqIn = math.MaxUint64-3, math.MaxUint64-3
	whole := bytes.Repeat([]byte{9}, MaxChunk)
	parts := [][]byte{bytes.Repeat([]byte{7}, MaxChunk/2), {}, bytes.Repeat([]byte{8}, MaxChunk/2-8)}
	batch := relay.MakeBuffers(parts...)
	encoded := make([]byte, DataRoom)
	for p := range batch.All() {
		encoded = compact.AppendBuffer(encoded, p)
	}
	for i, c := range []struct {
		what string
		send func() error
		data relay.Buffers
	}{
		{"one buffer", func() error { return la.SendData(math.MaxUint32, append(make([]byte, DataRoom), whole...)) }, relay.MakeBuffers(whole)},
		{"a batch", func() error { return la.SendBuffers(math.MaxUint32, len(parts), encoded) }, batch},
	} {
		want := (&relay.Data{Alias: math.MaxUint32, Buffers: c.data}).AppendPayload(AppendFrame(nil, Kind(relay.TypeData), math.MaxUint64-2+uint64(i), nil))
		if err := c.send(); err != nil {
			t.Fatal(err)
		}
		select {
		case f := <-got:
			if !bytes.Equal(f, want) {
				t.Fatalf("%s: frame of %d bytes, want %d", c.what, len(f), len(want))
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: nothing arrived", c.what)
		}
	}
}

func TestGate(t *testing.T) {
	g := NewGate()
	ctx := context.Background()
	if n, err := g.Take(ctx, 1, 2*Window); n != Window || err != nil {
		t.Fatalf("took %d %v", n, err)
	}
	got := make(chan int, 1)
	go func() {
		n, _ := g.Take(ctx, 1, 10)
		got <- n
	}()
	select {
	case <-got:
		t.Fatal("took credit that was not there")
	case <-time.After(50 * time.Millisecond):
	}
	g.Grant(4)
	if n := <-got; n != 4 {
		t.Fatalf("took %d of 4", n)
	}
	if n, err := g.TryTake(1, 10); n != 0 || err != nil {
		t.Fatalf("tried without credit: took %d, %v", n, err)
	}
	g.Grant(6)
	if n, err := g.TryTake(1, 4); n != 4 || err != nil {
		t.Fatalf("tried with 6 of credit: took %d, %v", n, err)
	}
	if n, err := g.TryTake(1, 10); n != 2 || err != nil {
		t.Fatalf("tried with 2 of credit: took %d, %v", n, err)
	}
	// A take of at least 8 waits for 8, and leaves less alone.
	g.Grant(5)
	if n, err := g.TryTake(8, 10); n != 0 || err != nil {
		t.Fatalf("tried for at least 8 with 5 of credit: took %d, %v", n, err)
	}
	go func() {
		n, _ := g.Take(ctx, 8, 10)
		got <- n
	}()
	select {
	case n := <-got:
		t.Fatalf("took %d, short of the 8 asked for", n)
	case <-time.After(50 * time.Millisecond):
	}
	g.Grant(2)
	select {
	case n := <-got:
		t.Fatalf("took %d, short of the 8 asked for", n)
	case <-time.After(50 * time.Millisecond):
	}
	g.Grant(4)
	if n := <-got; n != 10 {
		t.Fatalf("took %d of 11, at most 10 asked for", n)
	}
	g.Close(errTest)
	if _, err := g.Take(ctx, 1, 1); !errors.Is(err, errTest) {
		t.Fatalf("after close: %v", err)
	}
	g.Grant(1)
	if _, err := g.TryTake(1, 1); !errors.Is(err, errTest) {
		t.Fatalf("tried after close: %v", err)
	}
}

var errTest = errors.New("test")

func TestLedger(t *testing.T) {
	var l Ledger
	if err := l.Receive(Window); err != nil {
		t.Fatal(err)
	}
	if err := l.Receive(1); !errors.Is(err, ErrOverrun) {
		t.Fatalf("overrun: %v", err)
	}
	l = Ledger{}
	l.Receive(Window)
	granted := uint64(0)
	for range Window / 1000 {
		granted += l.Consume(1000)
	}
	granted += l.Consume(Window % 1000)
	// A sender that used its whole window has credit again once the
	// receiver has passed everything on: grants lag by less than grantAt.
	if granted == 0 || Window-granted >= grantAt {
		t.Fatalf("granted %d of %d consumed", granted, Window)
	}
}

// TestPlacementSpread: 10,000 keys over 4 workers land within 10% of
// even, and losing a worker moves only its own keys.
func TestPlacementSpread(t *testing.T) {
	workers := []string{"w0", "w1", "w2", "w3"}
	count := map[string]int{}
	keys := make([][]byte, 10000)
	for i := range keys {
		keys[i] = make([]byte, 32)
		rand.Read(keys[i])
		count[Pick(keys[i], workers)]++
	}
	for _, w := range workers {
		if c := count[w]; c < 2250 || c > 2750 {
			t.Errorf("%s holds %d of 10000 keys", w, c)
		}
	}
	for _, k := range keys {
		before := Pick(k, workers)
		after := Pick(k, workers[1:])
		if before != "w0" && before != after {
			t.Fatal("a key moved off a live worker")
		}
	}
	if Pick(keys[0], nil) != "" {
		t.Fatal("picked a worker from none")
	}
}

func startNATS(t *testing.T) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(natstest.Run(t, natsserver.Options{}).ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestLinkOrderAndLoss: frames arrive in order; a gap in the sequence
// fails the link loudly instead of passing on what follows.
func TestLinkOrderAndLoss(t *testing.T) {
	nc := startNATS(t)
	a, err := NewEndpoint(nc, "test.a", func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewEndpoint(nc, "test.b", func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan Frame, 1000)
	failed := make(chan error, 1)
	la := a.Attach("s1", "test.b.s1", func(Frame) {}, func(error) {})
	b.Attach("s1", "test.a.s1", func(f Frame) { got <- f }, func(err error) { failed <- err })
	for i := range 500 {
		if err := la.Send(KindBye, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 500 {
		f := <-got
		if !bytes.Equal(f.Payload, []byte(fmt.Sprint(i))) {
			t.Fatalf("frame %d carried %q", i, f.Payload)
		}
	}
	// A frame that skips a number, as a frame dropped by NATS would.
	nc.Publish("test.b.s1", AppendFrame(nil, KindBye, 502, nil))
	select {
	case err := <-failed:
		if !errors.Is(err, ErrFramesLost) {
			t.Fatalf("failed with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a gap went unnoticed")
	}
	if err := la.Send(KindBye, nil); err != nil {
		t.Fatal(err) // the sender's side is still open; only b's link failed
	}
	select {
	case f := <-got:
		t.Fatalf("a frame after the gap was delivered: %+v", f)
	case <-time.After(100 * time.Millisecond):
	}
}

func first(b relay.Buffers) string {
	p, _ := b.Next()
	return string(p)
}

// TestLinksOutliveAServer: an endpoint whose NATS server dies fails over
// to another server of the cluster, and its sessions go on, except one
// whose frame was lost meanwhile. That frame was the last its sender sent,
// so only the sync after the failover shows the gap.
func TestLinksOutliveAServer(t *testing.T) {
	servers := natstest.Cluster(t, 3)
	connect := func(ns *natsserver.Server) *nats.Conn {
		// One server's URL, as a node is usually given: the client learns
		// the others from it.
		nc, err := nats.Connect(ns.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	ncA, ncB := connect(servers[0]), connect(servers[1])
	lostA := make(chan error, 1)
	a, err := NewEndpoint(ncA, "test.a", func(err error) { lostA <- err })
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ncA.SetDisconnectErrHandler(func(_ *nats.Conn, err error) { a.Interrupted(err) })
	b, err := NewEndpoint(ncB, "test.b", func(err error) { t.Errorf("b lost NATS: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	type end struct {
		got    chan Frame
		failed chan error
	}
	attach := func(id string) (*Link, *Link, end) {
		e := end{got: make(chan Frame, 16), failed: make(chan error, 1)}
		la := a.Attach(id, "test.b."+id, func(f Frame) { e.got <- f }, func(err error) { e.failed <- err })
		lb := b.Attach(id, "test.a."+id, func(Frame) {}, func(err error) { t.Errorf("b's link %s failed: %v", id, err) })
		return la, lb, e
	}
	_, quietB, quiet := attach("quiet")
	_, lossyB, lossy := attach("lossy")
	for _, sub := range []string{"test.a.quiet", "test.b.quiet"} {
		natstest.AwaitInterest(t, sub, servers...)
	}
	for _, l := range []*Link{quietB, lossyB} {
		if err := l.Send(KindBye, []byte("before")); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range []end{quiet, lossy} {
		if f := <-e.got; string(f.Payload) != "before" {
			t.Fatalf("got %q", f.Payload)
		}
	}

	servers[0].Shutdown()
	await.True(t, "a's feed sees its server gone", func() bool { return !a.Up() })
	// Published while a subscribes nowhere: lost, and nothing follows it.
	if err := lossyB.Send(KindBye, []byte("lost")); err != nil {
		t.Fatal(err)
	}
	ncB.Flush()

	select {
	case err := <-lossy.failed:
		if !errors.Is(err, ErrFramesLost) {
			t.Fatalf("the lossy link failed with %v", err)
		}
	case f := <-lossy.got:
		t.Fatalf("the lost frame arrived: %q", f.Payload)
	case err := <-lostA:
		t.Fatalf("a gave up on NATS: %v", err)
	case <-time.After(ResyncWithin + 5*time.Second):
		t.Fatal("the lost frame went unnoticed")
	}
	if err := quietB.Send(KindBye, []byte("after")); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-quiet.got:
		if string(f.Payload) != "after" {
			t.Fatalf("got %q", f.Payload)
		}
	case err := <-quiet.failed:
		t.Fatalf("the quiet link failed: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the quiet link carried nothing after the failover")
	}
	if got := ncA.ConnectedUrl(); got == servers[0].ClientURL() {
		t.Fatalf("a is still on the dead server %s", got)
	}
}

// TestSyncsAreAskedAgain: a resync asks each link again until its peer
// answers, as an answer is lost when it leaves before the asking
// endpoint's subscription has spread over the NATS cluster; the asks and
// the answer take no number, so neither breaks the count.
func TestSyncsAreAskedAgain(t *testing.T) {
	nc := startNATS(t)
	a, err := NewEndpoint(nc, "test.a", func(err error) { t.Errorf("a lost NATS: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	got := make(chan Frame, 4)
	failed := make(chan error, 1)
	la := a.Attach("s1", "test.b.s1", func(f Frame) { got <- f }, func(err error) { failed <- err })
	if err := la.Send(KindBye, []byte("one")); err != nil {
		t.Fatal(err)
	}
	// The peer, seen as NATS carries it: it answers nothing at first.
	asks, err := nc.SubscribeSync("test.b.s1")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	a.Interrupted(errors.New("a blip"))
	for range 2 {
		m, err := asks.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("not asked again: %v", err)
		}
		f, err := DecodeFrame(m.Data)
		if err != nil || f.Kind != KindSync || f.Seq != 1 || !bytes.Equal(f.Payload, []byte{syncAsk}) {
			t.Fatalf("asked with %+v %v", f, err)
		}
	}
	nc.Publish("test.a.s1", AppendFrame(nil, KindSync, 0, nil))
	nc.Publish("test.a.s1", AppendFrame(nil, KindBye, 1, []byte("after")))
	select {
	case f := <-got:
		if string(f.Payload) != "after" {
			t.Fatalf("got %q", f.Payload)
		}
	case err := <-failed:
		t.Fatalf("the link failed: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("nothing after the answer")
	}
	// Answered: the asking stops. An ask already on its way may still
	// come; none after it (a trailing sync, which asks nothing, may).
	time.Sleep(2 * askAgain)
	for _, err := asks.NextMsg(0); err == nil; _, err = asks.NextMsg(0) {
	}
	for end := time.Now().Add(2 * askAgain); time.Now().Before(end); {
		m, err := asks.NextMsg(time.Until(end))
		if err != nil {
			break
		}
		if f, err := DecodeFrame(m.Data); err != nil || f.Kind != KindSync || len(f.Payload) != 0 {
			t.Fatalf("asked again after the answer: %q", m.Data)
		}
	}
	// A sync whose number shows a frame this end never received fails
	// the link, as a numbered frame skipping one would.
	nc.Publish("test.a.s1", AppendFrame(nil, KindSync, 3, nil))
	select {
	case err := <-failed:
		if !errors.Is(err, ErrFramesLost) {
			t.Fatalf("failed with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a gap shown by a sync went unnoticed")
	}
}

// TestEndpointGivesUp: an endpoint whose NATS stays away past
// ResyncWithin says so, for its owner to end the sessions.
func TestEndpointGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A resync polls a connection state; nothing but the clock moves.
		e := &Endpoint{links: map[string]*Link{}}
		lost := make(chan error, 1)
		e.lost = func(err error) { lost <- err }
		e.ctx, e.cancel = context.WithCancel(context.Background())
		defer e.cancel()
		e.nc = &nats.Conn{} // never connected
		e.Interrupted(errors.New("server gone"))
		start := time.Now()
		err := <-lost
		if !errors.Is(err, ErrNATSLost) || time.Since(start) < ResyncWithin {
			t.Fatalf("gave up after %v with %v", time.Since(start), err)
		}
		if !e.CutOff() {
			t.Fatal("an endpoint that gave up on NATS does not say it is cut off")
		}
	})
}

// TestSilentPeerFailsItsLink: a link whose peer answers none of a
// resync's asks within ResyncWithin fails with ErrFramesLost, as nothing
// can show whether its last frames arrived; a link whose peer answers
// goes on.
func TestSilentPeerFailsItsLink(t *testing.T) {
	t.Parallel()
	nc := startNATS(t)
	a, err := NewEndpoint(nc, "test.a", func(err error) { t.Errorf("a lost NATS: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	silentGot := make(chan Frame, 4)
	silentFailed := make(chan error, 1)
	a.Attach("silent", "test.b.silent", func(f Frame) { silentGot <- f }, func(err error) { silentFailed <- err })
	heardGot := make(chan Frame, 4)
	heardFailed := make(chan error, 1)
	a.Attach("heard", "test.b.heard", func(f Frame) { heardGot <- f }, func(err error) { heardFailed <- err })
	// The silent peer is asked, as NATS carries the asks, and says
	// nothing; the other answers every ask.
	asks, err := nc.SubscribeSync("test.b.silent")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Subscribe("test.b.heard", func(*nats.Msg) {
		nc.Publish("test.a.heard", AppendFrame(nil, KindSync, 0, nil))
	}); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	start := time.Now()
	a.Interrupted(errors.New("a blip"))
	if _, err := asks.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("the silent peer was not asked: %v", err)
	}
	select {
	case err := <-silentFailed:
		if !errors.Is(err, ErrFramesLost) {
			t.Fatalf("the silent peer's link failed with %v", err)
		}
		if waited := time.Since(start); waited < ResyncWithin {
			t.Fatalf("the silent peer's link failed after %v, before ResyncWithin", waited)
		}
	case err := <-heardFailed:
		t.Fatalf("the answered link failed: %v", err)
	case <-time.After(ResyncWithin + 5*time.Second):
		t.Fatal("a peer silent past ResyncWithin left its link waiting")
	}
	// The failed link receives nothing more; the answered one goes on.
	nc.Publish("test.a.silent", AppendFrame(nil, KindBye, 1, []byte("late")))
	nc.Publish("test.a.heard", AppendFrame(nil, KindBye, 1, []byte("after")))
	select {
	case f := <-heardGot:
		if string(f.Payload) != "after" {
			t.Fatalf("got %q", f.Payload)
		}
	case err := <-heardFailed:
		t.Fatalf("the answered link failed: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the answered link carried nothing after the resync")
	}
	select {
	case f := <-silentGot:
		t.Fatalf("the failed link received %q", f.Payload)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestTrailingSyncShowsALostLastFrame: a frame lost with no connection
// interrupted, and nothing sent after it, still fails its link, by the
// sync its sender sends once it has been quiet; a link whose frames all
// arrived takes its sync without harm.
func TestTrailingSyncShowsALostLastFrame(t *testing.T) {
	t.Parallel()
	nc := startNATS(t)
	a, err := NewEndpoint(nc, "test.a", func(err error) { t.Errorf("a lost NATS: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := NewEndpoint(nc, "test.b", func(err error) { t.Errorf("b lost NATS: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	lossy := a.Attach("lossy", "test.b.lossy", func(Frame) {}, func(error) {})
	whole := a.Attach("whole", "test.b.whole", func(Frame) {}, func(error) {})
	// Sent before b's end of the session is there: b drops it, as a
	// route between NATS servers that lost it would.
	if err := lossy.Send(KindBye, []byte("lost")); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	time.Sleep(100 * time.Millisecond)
	lossyFailed := make(chan error, 1)
	b.Attach("lossy", "test.a.lossy", func(f Frame) { t.Errorf("the lost frame arrived: %q", f.Payload) }, func(err error) { lossyFailed <- err })
	wholeGot := make(chan Frame, 4)
	wholeFailed := make(chan error, 1)
	b.Attach("whole", "test.a.whole", func(f Frame) { wholeGot <- f }, func(err error) { wholeFailed <- err })
	if err := whole.Send(KindBye, []byte("kept")); err != nil {
		t.Fatal(err)
	}
	if f := <-wholeGot; string(f.Payload) != "kept" {
		t.Fatalf("got %q", f.Payload)
	}
	select {
	case err := <-lossyFailed:
		if !errors.Is(err, ErrFramesLost) {
			t.Fatalf("the lossy link failed with %v", err)
		}
	case err := <-wholeFailed:
		t.Fatalf("the whole link failed: %v", err)
	case <-time.After(3*trailAfter + 5*time.Second):
		t.Fatal("a lost last frame went unnoticed")
	}
	select {
	case err := <-wholeFailed:
		t.Fatalf("the whole link failed: %v", err)
	case <-time.After(2 * trailAfter):
	}
}
