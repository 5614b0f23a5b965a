package session

import (
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/dhtrelay/dht-relay/internal/budget"
	"github.com/dhtrelay/dht-relay/internal/routing"
	"github.com/dhtrelay/dht-relay/relay"
)

// announce is the frame in which the worker says a peer's message of n
// bytes comes in parts on the stream it calls alias.
func announce(alias uint32, n uint64) routing.Frame {
	return routing.Frame{Kind: routing.KindMessage, Payload: routing.AppendMessage(nil, routing.Message{Alias: alias, Bytes: n})}
}

// TestGatherTakesTheBudget: a peer's message to be gathered whole counts
// all its bytes against the edge's budget when announced, however slowly
// its parts come, and gives them back when its stream goes. One no longer
// than the credit window is held as any stream data is, never refused;
// a longer one that does not fit ends the session as a read-budget
// refusal, instead of growing the edge past its budget.
func TestGatherTakesTheBudget(t *testing.T) {
	b := budget.New(3 << 20)
	s := New(Config{ID: "s", Framed: &closedTransport{}, Budget: b, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	for alias := range uint32(4) {
		put(&s.byWorker, alias, &stream{worker: alias, gate: routing.NewGate()})
	}
	s.onWorker(announce(0, 2<<20))
	if b.Used() != 2<<20 || s.err != nil {
		t.Fatalf("an announced message holds %d of the budget (session error %v), want %d", b.Used(), s.err, 2<<20)
	}
	s.onWorker(routing.Frame{Kind: routing.KindGone, Payload: routing.AppendGone(nil, routing.Gone{Alias: 0})})
	if b.Used() != 0 {
		t.Fatalf("a gone stream's message still holds %d", b.Used())
	}
	s.onWorker(announce(1, 2<<20))
	s.onWorker(announce(2, routing.Window))
	s.onWorker(announce(3, routing.Window))
	if want := int64(2<<20 + 2*routing.Window); b.Used() != want || s.err != nil {
		t.Fatalf("messages within the credit window hold %d (session error %v), want %d past the budget", b.Used(), s.err, want)
	}
	s.onWorker(routing.Frame{Kind: routing.KindGone, Payload: routing.AppendGone(nil, routing.Gone{Alias: 2})})
	s.onWorker(routing.Frame{Kind: routing.KindGone, Payload: routing.AppendGone(nil, routing.Gone{Alias: 3})})
	put(&s.byWorker, 2, &stream{worker: 2, gate: routing.NewGate()})
	used := b.Used()
	s.onWorker(announce(2, routing.Window+1))
	if !errors.Is(s.err, relay.ErrReadBudget) || FailureKind(s.err) != "read_budget" {
		t.Fatalf("a message past the budget ended the session with %v (kind %q)", s.err, FailureKind(s.err))
	}
	if b.Used() != used {
		t.Fatalf("a refused message holds %d", b.Used()-used)
	}
}
