package udx

import (
	"bytes"
	"net"
	"net/netip"
	"runtime"
	"testing"
)

// TestReaderTakesWhatWaits: the socket's reader answers at once that
// nothing waits when asked not to wait, and reads datagrams that wait in
// as few calls as its slots allow (on Linux), each whole, whatever its
// size and slot, with its sender.
func TestReaderTakesWhatWaits(t *testing.T) {
	for _, network := range []string{"udp4", "udp6"} {
		t.Run(network, func(t *testing.T) {
			host := map[string]string{"udp4": "127.0.0.1", "udp6": "::1"}[network]
			conn, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(host), 0)))
			if err != nil {
				t.Skipf("no %s loopback: %v", network, err)
			}
			defer conn.Close()
			peer, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(host), 0)))
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			u := New()
			r := newDatagramReader(&Socket{u: u, conn: conn})
			if n, err := r.read(false); n != 0 || err != nil {
				t.Fatalf("nothing sent, yet read %d, %v", n, err)
			}
			if runtime.GOOS == "linux" && u.Counts().RecvCalls != 1 {
				t.Fatalf("a read that found nothing counted as %d calls", u.Counts().RecvCalls)
			}
			// Sizes up to what one slot holds, the largest late in the run.
			sizes := []int{1, 1200, 1500, 9000, 1, 60000, 1400, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40}
			to := conn.LocalAddr().(*net.UDPAddr)
			for i, n := range sizes {
				p := bytes.Repeat([]byte{byte(i)}, n)
				if _, err := peer.WriteToUDP(p, to); err != nil {
					t.Fatal(err)
				}
			}
			from := peer.LocalAddr().(*net.UDPAddr).AddrPort()
			got, calls := 0, 0
			for got < len(sizes) {
				n, err := r.read(true)
				if err != nil {
					t.Fatal(err)
				}
				calls++
				for i := range n {
					p, _, src := r.datagram(i)
					want := bytes.Repeat([]byte{byte(got)}, sizes[got])
					if !bytes.Equal(p, want) {
						t.Fatalf("datagram %d: %d bytes, want %d of %d", got, len(p), len(want), got)
					}
					if src != from {
						t.Fatalf("datagram %d from %v, want %v", got, src, from)
					}
					got++
				}
			}
			if n, err := r.read(false); n != 0 || err != nil {
				t.Fatalf("all read, yet read %d more, %v", n, err)
			}
			if c := u.Counts().RecvCalls; c < uint64(calls) {
				t.Fatalf("%d reads counted as %d calls", calls, c)
			}
			if runtime.GOOS == "linux" && calls > len(sizes)/4 {
				t.Fatalf("%d datagrams took %d reads", len(sizes), calls)
			}
			t.Logf("%d datagrams in %d reads", len(sizes), calls)
		})
	}
}
