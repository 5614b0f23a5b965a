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

// TestGatherTakesTheBudget: a peer's message to be gathered whole takes
// all its bytes from the edge's budget when announced, however slowly its
// parts come, and gives them back when its stream goes; one that does
// not fit ends the session as a read-budget refusal, instead of growing
// the edge past its budget.
func TestGatherTakesTheBudget(t *testing.T) {
	b := budget.New(3 << 20)
	s := New(Config{ID: "s", Framed: &closedTransport{}, Budget: b, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	for _, alias := range []uint32{1, 2} {
		put(&s.byWorker, alias, &stream{worker: alias, gate: routing.NewGate()})
	}
	s.onWorker(announce(1, 2<<20))
	if b.Used() != 2<<20 || s.err != nil {
		t.Fatalf("an announced message holds %d of the budget (session error %v), want %d", b.Used(), s.err, 2<<20)
	}
	s.onWorker(routing.Frame{Kind: routing.KindGone, Payload: routing.AppendGone(nil, routing.Gone{Alias: 1})})
	if b.Used() != 0 {
		t.Fatalf("a gone stream's message still holds %d", b.Used())
	}
	s.onWorker(announce(2, 4<<20))
	if !errors.Is(s.err, relay.ErrReadBudget) || FailureKind(s.err) != "read_budget" {
		t.Fatalf("a message past the budget ended the session with %v (kind %q)", s.err, FailureKind(s.err))
	}
	if b.Used() != 0 {
		t.Fatalf("a refused message holds %d", b.Used())
	}
}
