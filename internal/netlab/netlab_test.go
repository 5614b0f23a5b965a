package netlab

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// mappedPorts sends from one socket of host to two ports of an internet
// server and returns the source ports the server saw: the RFC 4787 test of
// whether a NAT's mapping depends on the destination.
func mappedPorts(t *testing.T, inet, host *Host) (netip.Addr, [2]uint16) {
	t.Helper()
	var ports [2]uint16
	var seen netip.Addr
	srv := [2]*net.UDPConn{}
	for i := range srv {
		c, err := inet.ListenUDP(uint16(40000 + i))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		srv[i] = c
	}
	cl, err := host.ListenUDP(0)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i, s := range srv {
		dst := netip.AddrPortFrom(inet.Addr, uint16(40000+i))
		if _, err := cl.WriteToUDPAddrPort([]byte("probe"), dst); err != nil {
			t.Fatal(err)
		}
		s.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 16)
		_, from, err := s.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("probe %d did not arrive: %v", i, err)
		}
		seen, ports[i] = from.Addr(), from.Port()
	}
	return seen, ports
}

// TestNATKinds builds one host of each kind and classifies its NAT the
// RFC 4787 way.
func TestNATKinds(t *testing.T) {
	lab, inet := New(t)
	for _, kind := range []NAT{Open, Consistent, Random} {
		h := lab.AddHost(kind)
		addr, ports := mappedPorts(t, inet, h)
		switch kind {
		case Open:
			if addr != h.Addr {
				t.Errorf("open host seen as %v, not %v", addr, h.Addr)
			}
		case Consistent:
			if addr == h.Addr || ports[0] != ports[1] {
				t.Errorf("consistent NAT: seen as %v ports %v", addr, ports)
			}
		case Random:
			if addr == h.Addr || ports[0] == ports[1] {
				t.Errorf("random NAT: seen as %v ports %v", addr, ports)
			}
		}
		t.Logf("%v host %v seen from the internet as %v ports %v", kind, h.Addr, addr, ports)
	}
}
