package worker

import (
	"bytes"
	"crypto/rand"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/await"
	"github.com/dhtrelay/dht-relay/internal/routing"
	"github.com/dhtrelay/dht-relay/internal/telemetry"
	"github.com/dhtrelay/dht-relay/noise"
	"github.com/dhtrelay/dht-relay/relay"
)

// outOfRange panics as the runtime does on an index out of range.
func outOfRange(i int) int {
	var s []int
	return s[i]
}

// TestAPanicIsContained: a panic in a session's guarded work is recovered,
// logged with its stack, and becomes ErrInternal for that session; the
// goroutine that panicked returns normally, so the process lives on.
func TestAPanicIsContained(t *testing.T) {
	var logs bytes.Buffer
	w := &Worker{log: slog.New(slog.NewTextHandler(&logs, nil)), cfg: Config{Telemetry: telemetry.Nop()}}
	var err error
	func() {
		defer func() {
			if v := recover(); v != nil {
				err = w.recovered(v, "s1")
			}
		}()
		outOfRange(3)
	}()
	if !errors.Is(err, ErrInternal) {
		t.Fatalf("recovered as %v", err)
	}
	if !strings.Contains(logs.String(), "session=s1") || !strings.Contains(logs.String(), "contain_test.go") {
		t.Fatalf("the panic was not logged with its session and stack:\n%s", logs.String())
	}
	// contain itself, on a session already ended: it recovers and the
	// ending it starts is a no-op.
	s := &session{w: w, id: "s2", ended: true}
	func() {
		defer s.contain()
		panic("boom")
	}()
	if !strings.Contains(logs.String(), "session=s2") {
		t.Fatalf("contain did not log the panic:\n%s", logs.String())
	}
}

// TestAPanicUnderALockEndsOnlyItsSession: a panic while the worker reads
// its UDX for a refusal check (here during a connect) ends that session
// and leaves no lock held: the endpoint's goroutine, which hands every
// session its frames, goes on, and another session's connect is answered.
func TestAPanicUnderALockEndsOnlyItsSession(t *testing.T) {
	w, e := startWorker(t)
	link1, frames1, _ := e.open(t, "s1")
	link2, frames2, _ := e.open(t, "s2")
	var panicked atomic.Bool
	w.held.mu.Lock()
	udx := w.held.udx
	w.held.udx = func() int64 {
		if panicked.CompareAndSwap(false, true) {
			panic("boom")
		}
		return udx()
	}
	w.held.at = time.Time{} // the next check reads the UDX
	w.held.mu.Unlock()
	peer, _ := noise.GenerateKeyPair(rand.Reader)
	if err := link1.SendMessage(&relay.Connect{Alias: 1, RemotePublicKey: peer.Public}); err != nil {
		t.Fatal(err)
	}
	await.True(t, "s1's end", arrived(frames1, func(f routing.Frame) bool { return f.Kind == routing.KindBye }))
	if !panicked.Load() {
		t.Fatal("the connect did not read the UDX")
	}
	// s2's first connect dials (no network here: it waits); the second,
	// on the same alias, is refused at once, which only a handler that
	// got past the first can do.
	connect := &relay.Connect{Alias: 7, RemotePublicKey: peer.Public}
	link2.SendMessage(connect)
	link2.SendMessage(connect)
	await.True(t, "an answer to s2's second connect", arrived(frames2, func(f routing.Frame) bool {
		m, err := f.Message()
		d, ok := m.(*relay.Destroy)
		return err == nil && ok && d.RemoteAlias == 7
	}))
}

// arrived is a condition for await: it takes the frames waiting on c and
// holds once one that match accepts has come.
func arrived(c <-chan routing.Frame, match func(routing.Frame) bool) func() bool {
	seen := false
	return func() bool {
		for !seen {
			select {
			case f := <-c:
				seen = match(f)
			default:
				return false
			}
		}
		return true
	}
}
