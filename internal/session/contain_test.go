package session

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/routing"
	"github.com/dhtrelay/dht-relay/relay"
)

// closedTransport is a transport that was closed: nothing to read, and
// writes fail.
type closedTransport struct {
	mu     sync.Mutex
	closed bool
}

var errClosed = errors.New("closed")

func (c *closedTransport) ReadMessage() ([]byte, error) { return nil, errClosed }
func (c *closedTransport) WriteMessage([]byte) error    { return errClosed }
func (c *closedTransport) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}

// panicHere panics as the runtime does on an index out of range.
func panicHere(i int) int {
	var s []int
	return s[i]
}

// TestAPanicEndsOnlyItsSession: a panic in code a session's contain
// guards is logged with its stack and fails that session with
// ErrInternal, counted as "panic"; another session is untouched.
func TestAPanicEndsOnlyItsSession(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ta, tb := &closedTransport{}, &closedTransport{}
	a := New(Config{ID: "a", Framed: ta, Logger: log})
	b := New(Config{ID: "b", Framed: tb, Logger: log})
	func() {
		defer a.contain()
		panicHere(3)
	}()
	a.mu.Lock()
	errA := a.err
	a.mu.Unlock()
	if !errors.Is(errA, ErrInternal) || FailureKind(errA) != "panic" {
		t.Fatalf("the session that panicked ended with %v (kind %q)", errA, FailureKind(errA))
	}
	if !ta.closed || a.ctx.Err() == nil {
		t.Fatal("the session that panicked was not closed")
	}
	b.mu.Lock()
	errB := b.err
	b.mu.Unlock()
	if errB != nil || tb.closed || b.ctx.Err() != nil {
		t.Fatalf("another session was touched: %v", errB)
	}
	if !strings.Contains(logs.String(), "panic while serving a session") || !strings.Contains(logs.String(), "contain_test.go") {
		t.Fatalf("the panic was not logged with its stack:\n%s", logs.String())
	}
}

// TestAPanicUnderTheLockEndsOnlyItsSession: a panic in a frame's handling
// while the session's lock is held (here a session made without its
// limits, which queuing a message reads) ends the session, and the
// endpoint's goroutine that delivered the frame goes on to the next:
// contain's Fail would wait for the lock for ever if the panic kept it.
func TestAPanicUnderTheLockEndsOnlyItsSession(t *testing.T) {
	s := New(Config{ID: "s", Framed: &closedTransport{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s.out.joins = true // a message in parts is held, then queued
	put(&s.byWorker, 5, &stream{worker: 5, gate: routing.NewGate()})
	s.onWorker(announce(5, 10))
	done := make(chan struct{})
	go func() {
		s.onWorker(routing.Frame{Kind: routing.Kind(relay.TypeData), Payload: (&relay.Data{Alias: 5, Buffers: relay.MakeBuffers(make([]byte, 10))}).AppendPayload(nil)})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the frame's handler did not return after a panic under the session's lock")
	}
	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	if !errors.Is(err, ErrInternal) {
		t.Fatalf("the session ended with %v, want %v", err, ErrInternal)
	}
}
