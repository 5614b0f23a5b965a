package hyperdht

import (
	"context"
	"net"
	"testing"
	"time"
)

// A punch socket that the stream moves to stays the stream's, whichever
// comes first: the peer's packets on it (the stream, running relayed, is
// moved by its firewall) or the punch's ping. Closing it under the stream
// failed a relayed connection with "use of closed network connection".
func TestPunchSocketStaysWithStream(t *testing.T) {
	_, n := startMixed(t)
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	from := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	for _, pingFirst := range []bool{false, true} {
		stream, err := n.d().UDX().NewStream(n.d().UDX().RandomID())
		if err != nil {
			t.Fatal(err)
		}
		paths := newStreamPaths(stream, 1)
		c := &clientPunch{n: n, remote: &NoisePayload{Firewall: FirewallConsistent}}
		ctx, cancel := context.WithCancel(context.Background())
		p, err := c.newPuncher(paths, cancel, make(chan struct{}))
		if err != nil {
			t.Fatal(err)
		}
		s := p.socket()
		if pingFirst {
			p.onPing(s, from)
			paths.firewall(s, from)
		} else {
			paths.firewall(s, from)
			p.onPing(s, from)
		}
		if !paths.runsOn(s) {
			t.Fatalf("ping first %v: the stream is not on the punch socket", pingFirst)
		}
		if err := s.Send([]byte{1}, from); err != nil {
			t.Fatalf("ping first %v: the stream's socket was closed: %v", pingFirst, err)
		}
		if ctx.Err() == nil {
			t.Fatalf("ping first %v: the punch goes on", pingFirst)
		}
		// The connection owns the socket: it closes with the stream.
		stream.Destroy(nil)
		deadline := time.Now().Add(5 * time.Second)
		for s.Send([]byte{1}, from) == nil {
			if time.Now().After(deadline) {
				t.Fatalf("ping first %v: the socket outlives its stream", pingFirst)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
