package udx

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestRawSenderNamesEitherFamily: a socket's stream packets leave through
// the raw sender, to an IPv4 peer from an IPv4 socket, and to an IPv4
// and an IPv6 peer from a dual-stack one, as the net package would send
// them; packets sent in parts come out whole, segmented by the kernel or
// sent one at a time. An
// address the sender cannot name (a scoped one, or IPv6 from an IPv4
// socket) is left to the net package.
func TestRawSenderNamesEitherFamily(t *testing.T) {
	u := New()
	for _, c := range []struct{ bind, peer string }{
		{"127.0.0.1:0", "127.0.0.1:0"},
		{"[::]:0", "127.0.0.1:0"},
		{"[::]:0", "[::1]:0"},
	} {
		s, err := u.Listen(netip.MustParseAddrPort(c.bind), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if s.rs == nil {
			t.Fatalf("socket on %s: no raw sender", c.bind)
		}
		peer, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(c.peer)))
		if err != nil {
			t.Fatal(err)
		}
		defer peer.Close()
		to := peer.LocalAddr().(*net.UDPAddr).AddrPort()
		if err := s.write([]byte("one packet"), to); err != nil {
			t.Fatalf("%s to %s: %v", c.bind, to, err)
		}
		want := [][]byte{[]byte("one packet")}
		// Three packets of 100, 100 and 40 bytes, in parts whose ends
		// are not the packets': segmented by the kernel, then one at a
		// time as where the device cannot segment.
		all := make([]byte, 240)
		for i := range all {
			all[i] = byte(i)
		}
		for _, gso := range []bool{true, false} {
			if gso && !s.gso.Load() {
				continue
			}
			s.gso.Store(gso)
			parts := [][]byte{all[:30], all[30:30], all[30:170], all[170:200], all[200:]}
			if _, err := s.writeSegments(parts, 100, 3, to, nil); err != nil {
				t.Fatalf("%s to %s, segmented %v: %v", c.bind, to, gso, err)
			}
			want = append(want, all[:100], all[100:200], all[200:])
		}
		peer.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 2048)
		for i, w := range want {
			n, from, err := peer.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("%s to %s, datagram %d: %v", c.bind, to, i, err)
			}
			if !bytes.Equal(buf[:n], w) || from.Port() != s.LocalAddr().Port() {
				t.Fatalf("%s to %s, datagram %d: %q from %v", c.bind, to, i, buf[:n], from)
			}
		}
	}
	for _, c := range []struct{ bind, to string }{
		{"127.0.0.1:0", "[::1]:9"},
		{"127.0.0.1:0", "[fe80::1%lo]:9"},
		{"[::]:0", "[fe80::1%lo]:9"},
	} {
		s, err := u.Listen(netip.MustParseAddrPort(c.bind), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if sent, _ := s.rs.send([][]byte{[]byte("x")}, nil, netip.MustParseAddrPort(c.to)); sent {
			t.Fatalf("the raw sender sent to %s from a socket on %s", c.to, c.bind)
		}
	}
}
