package hyperdht

import (
	"net/netip"
)

// Peers behind the same NAT reach each other on their network rather than
// through it (few NATs hairpin): each side names its own interface
// addresses in its Noise payload, and a client that sees the server at its
// own public address tries the server's address that shares the longest
// prefix with one of its own, as hyperdht's localConnection does.

// localAddresses are the addresses of the server socket on this host's
// interfaces; only loopback when the node is bound there.
func (n *Node) localAddresses() []netip.AddrPort {
	d := n.d()
	local := d.ServerSocket().LocalAddr()
	port := local.Port()
	if local.Addr().IsLoopback() {
		return []netip.AddrPort{local}
	}
	var out []netip.AddrPort
	if addrs, err := d.UDX().InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			out = append(out, netip.AddrPortFrom(a, port))
		}
	}
	if len(out) == 0 {
		out = append(out, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), port))
	}
	return out
}

// matchAddress picks the address of theirs on the network nearest ours:
// the first that shares three leading octets with one of ours, else the
// first sharing two, else one; nil when none shares the first.
func matchAddress(ours, theirs []netip.AddrPort) *netip.AddrPort {
	best, bestShared := -1, 0
	for _, o := range ours {
		a := o.Addr().As4()
		for i, t := range theirs {
			b := t.Addr().As4()
			shared := 0
			for shared < 3 && a[shared] == b[shared] {
				shared++
			}
			if shared == 3 {
				return &theirs[i]
			}
			if shared > bestShared {
				best, bestShared = i, shared
			}
		}
	}
	if best < 0 {
		return nil
	}
	return &theirs[best]
}

// isPrivate4 is bogon's private-use test: RFC 1918, carrier-grade NAT,
// loopback and link-local.
func isPrivate4(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	b := a.As4()
	return b[0] == 10 || (b[0] == 100 && b[1] >= 64 && b[1] <= 127) || b[0] == 127 ||
		(b[0] == 169 && b[1] == 254) || (b[0] == 172 && b[1] >= 16 && b[1] <= 31) || (b[0] == 192 && b[1] == 168)
}

// isReserved4 is bogon's reserved test: addresses no host has.
func isReserved4(a netip.Addr) bool {
	if !a.Is4() {
		return true
	}
	b := a.As4()
	return b[0] == 0 || (b[0] == 192 && b[1] == 0 && (b[2] == 0 || b[2] == 2)) || (b[0] == 198 && (b[1] == 18 || b[1] == 19)) ||
		(b[0] == 198 && b[1] == 51 && b[2] == 100) || (b[0] == 203 && b[1] == 0 && b[2] == 113) || b[0] >= 224
}

// sharesNetwork says whether one of theirs private addresses is on a
// network near one of ours.
func sharesNetwork(ours, theirs []netip.AddrPort) bool {
	var private []netip.AddrPort
	for _, a := range theirs {
		if isPrivate4(a.Addr()) {
			private = append(private, a)
		}
	}
	return len(private) > 0 && matchAddress(ours, private) != nil
}
