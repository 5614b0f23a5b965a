package dhtrpc

import (
	"net/netip"

	"golang.org/x/crypto/blake2b"

	"github.com/dhtrelay/dht-relay/compact"
)

// NodeID is the id dht-rpc derives for a persistent node at addr:
// BLAKE2b-256 of its ipv4Address encoding.
func NodeID(addr netip.AddrPort) [IDSize]byte {
	return blake2b.Sum256(compact.AppendIPv4(make([]byte, 0, 6), addr))
}

// closer reports whether a is closer to target than b by XOR distance.
func closer(target, a, b *[IDSize]byte) bool {
	for i := range target {
		da, db := a[i]^target[i], b[i]^target[i]
		if da != db {
			return da < db
		}
	}
	return false
}

// commonPrefix is the number of leading bits a and b share.
func commonPrefix(a, b *[IDSize]byte) int {
	for i := range a {
		if x := a[i] ^ b[i]; x != 0 {
			n := i * 8
			for x&0x80 == 0 {
				x <<= 1
				n++
			}
			return n
		}
	}
	return IDSize * 8
}
