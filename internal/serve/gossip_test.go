package serve

import (
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

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

type cutOffNode struct{ off atomic.Bool }

func (n *cutOffNode) CutOff() bool { return n.off.Load() }

type awayLog chan bool

func (a awayLog) SetAway(away bool) error {
	select {
	case a <- away:
	default:
	}
	return nil
}

// TestAnnounceCutOff: the node's cut-off state is announced as it
// changes, and not after stop returns.
func TestAnnounceCutOff(t *testing.T) {
	node := &cutOffNode{}
	said := make(awayLog, 1000)
	stop := AnnounceCutOff(node, said, slog.New(slog.DiscardHandler))
	want := func(away bool) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case got := <-said:
				if got == away {
					return
				}
			case <-deadline:
				t.Fatalf("away=%v never announced", away)
			}
		}
	}
	want(false)
	node.off.Store(true)
	want(true)
	node.off.Store(false)
	want(false)
	stop()
	for len(said) > 0 {
		<-said
	}
	time.Sleep(3 * cutOffPoll)
	if len(said) > 0 {
		t.Fatal("announced after stop")
	}
}
