package serve

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/dhtrelay/dht-relay/internal/membership"
)

// TestGossipNeedsAKeyOffLoopback: gossip that others could reach is
// refused without a key, and allowed on loopback.
func TestGossipNeedsAKeyOffLoopback(t *testing.T) {
	for _, bind := range []string{"0.0.0.0:0", "[::]:0", "10.1.2.3:7946", ":7946"} {
		g := &Gossip{Bind: bind}
		if _, err := g.Start("edge-a", membership.Edge, membership.Worker, func(string) {}, slog.Default()); !errors.Is(err, ErrGossipKey) {
			t.Errorf("%s without a key: %v", bind, err)
		}
	}
	g := &Gossip{Bind: "127.0.0.1:0"}
	m, err := g.Start("edge-a", membership.Edge, membership.Worker, func(string) {}, slog.Default())
	if err != nil {
		t.Fatalf("loopback without a key: %v", err)
	}
	m.Close(0)
}
