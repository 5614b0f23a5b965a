package membership

import (
	"context"
	"crypto/rand"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/await"
)

type lostLog chan string

func start(t *testing.T, id string, role, watch Role, join []string, lost lostLog) *Members {
	t.Helper()
	m, err := Start(Config{ID: id, Role: role, Watch: watch, Bind: "127.0.0.1:0", Join: join, OnLost: func(id string) { lost <- id }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(time.Second) })
	return m
}

func waitLive(t *testing.T, m *Members, want ...string) {
	t.Helper()
	if !await.Poll(10*time.Second, func() bool { return slices.Equal(m.Live(), want) }) {
		t.Fatalf("%s sees %v, want %v", m.cfg.ID, m.Live(), want)
	}
}

func waitLost(t *testing.T, lost lostLog, id string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	timer := time.After(within)
	for {
		select {
		case got := <-lost:
			if got == id {
				return time.Since(start)
			}
		case <-timer:
			t.Fatalf("%s not reported lost within %v", id, within)
		}
	}
}

// An edge sees the workers and not the other edge; a crashed worker is
// reported dead within the service's five seconds, and one that leaves
// at once.
func TestLiveAndLost(t *testing.T) {
	lost := make(lostLog, 16)
	e1 := start(t, "e1", Edge, Worker, nil, lost)
	w1 := start(t, "w1", Worker, Edge, []string{e1.Addr()}, make(lostLog, 16))
	w2 := start(t, "w2", Worker, Edge, []string{e1.Addr()}, make(lostLog, 16))
	e2 := start(t, "e2", Edge, Worker, []string{w1.Addr()}, make(lostLog, 16))
	waitLive(t, e1, "w1", "w2")
	waitLive(t, e2, "w1", "w2")
	waitLive(t, w1, "e1", "e2")

	// A crash: no leave message, the others must detect it.
	w2.closed.Do(func() {
		w2.stop()
		<-w2.done
		w2.ml.Shutdown()
	})
	took := waitLost(t, lost, "w2", 5*time.Second)
	t.Logf("crashed worker reported dead after %v", took)
	waitLive(t, e1, "w1")

	w1.Close(time.Second)
	took = waitLost(t, lost, "w1", time.Second)
	t.Logf("leaving worker reported after %v", took)
	waitLive(t, e1)
	if err := e1.WaitLive(ctxTimeout(t, 100*time.Millisecond)); err == nil {
		t.Fatal("WaitLive returned with no worker alive")
	}
}

// TestAwayCountsAsLost: a worker marked away (cut off from NATS) is
// reported lost to the edges and left out of their Live, while it stays a
// member; marked back, it is live again and does not count as lost once
// more.
func TestAwayCountsAsLost(t *testing.T) {
	lost := make(lostLog, 16)
	e1 := start(t, "e1", Edge, Worker, nil, lost)
	w1 := start(t, "w1", Worker, Edge, []string{e1.Addr()}, make(lostLog, 16))
	start(t, "w2", Worker, Edge, []string{e1.Addr()}, make(lostLog, 16))
	waitLive(t, e1, "w1", "w2")

	if err := w1.SetAway(true); err != nil {
		t.Fatal(err)
	}
	took := waitLost(t, lost, "w1", 2*time.Second)
	t.Logf("away worker reported lost after %v", took)
	waitLive(t, e1, "w2")
	waitLive(t, w1, "e1")                    // w1 itself still sees the edge
	if err := w1.SetAway(true); err != nil { // again: no news
		t.Fatal(err)
	}

	if err := w1.SetAway(false); err != nil {
		t.Fatal(err)
	}
	waitLive(t, e1, "w1", "w2")
	select {
	case id := <-lost:
		t.Fatalf("%s reported lost again", id)
	case <-time.After(500 * time.Millisecond):
	}
}

// A node started before its seed keeps trying and joins once the seed is
// up.
func TestJoinsSeedStartedLater(t *testing.T) {
	seed := freeSeed(t)
	e := start(t, "e1", Edge, Worker, []string{seed}, make(lostLog, 1))
	time.Sleep(rejoinInterval / 2)
	startSeed(t, "w1", seed)
	waitLive(t, e, "w1")
}

// A node whose seed is not up yet keeps trying it even after another
// member has joined the node: that member may know nothing of the
// cluster behind the seed.
func TestJoinsSeedAfterAnotherJoinedIt(t *testing.T) {
	seed := freeSeed(t)
	e := start(t, "e1", Edge, Worker, []string{seed}, make(lostLog, 1))
	start(t, "w1", Worker, Edge, []string{e.Addr()}, make(lostLog, 1))
	waitLive(t, e, "w1")
	startSeed(t, "w2", seed)
	waitLive(t, e, "w1", "w2")
}

// freeSeed is a loopback address nothing listens on, for a seed started
// after the node that joins it.
func freeSeed(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startSeed starts worker id on seed, skipping the test if the port was
// taken meanwhile.
func startSeed(t *testing.T, id, seed string) {
	t.Helper()
	w, err := Start(Config{ID: id, Role: Worker, Watch: Edge, Bind: seed})
	if err != nil {
		t.Skipf("the seed's port was taken meanwhile: %v", err)
	}
	t.Cleanup(func() { w.Close(time.Second) })
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// With a key, a node that does not hold it cannot join, and one that
// does can.
func TestKey(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	e, err := Start(Config{ID: "e1", Role: Edge, Watch: Worker, Bind: "127.0.0.1:0", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(time.Second) })
	other := make([]byte, 32)
	rand.Read(other)
	for _, k := range []struct {
		id  string
		key []byte
	}{{"stranger", nil}, {"forger", other}} {
		w, err := Start(Config{ID: k.id, Role: Worker, Watch: Edge, Bind: "127.0.0.1:0", Key: k.key, Join: []string{e.Addr()}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close(0) })
	}
	w, err := Start(Config{ID: "w1", Role: Worker, Watch: Edge, Bind: "127.0.0.1:0", Key: key, Join: []string{e.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(time.Second) })
	waitLive(t, e, "w1")
	time.Sleep(rejoinInterval) // the others keep trying meanwhile
	if live := e.Live(); !slices.Equal(live, []string{"w1"}) {
		t.Fatalf("the edge sees %v; nodes without the key joined", live)
	}
}
