package relay

import (
	"fmt"
	"net/netip"

	"github.com/dhtrelay/dht-relay/compact"
)

// Node is a DHT node as a Result names it: its id (nil when it has none) and
// its address.
type Node struct {
	ID      []byte
	Address netip.AddrPort
}

// Peer is an announced peer: its public key and the relays it can be reached
// through.
type Peer struct {
	PublicKey      [PublicKeySize]byte
	RelayAddresses []netip.AddrPort
}

// Announcers is the payload of a Result: one DHT node's reply to a lookup,
// announce or unannounce.
type Announcers struct {
	Token [32]byte
	From  Node
	To    Node
	Peers []Peer
}

func appendNode(b []byte, n *Node) []byte {
	return compact.AppendIPv4(compact.AppendBuffer(b, n.ID), n.Address)
}

func decodeNode(r *compact.Reader) Node {
	return Node{ID: nullable(r.Buffer()), Address: r.IPv4()}
}

// AppendBinary appends the encoding of a.
func (a *Announcers) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, a.Token[:]...)
	b = appendNode(appendNode(b, &a.From), &a.To)
	b = compact.AppendUint(b, uint64(len(a.Peers)))
	for i := range a.Peers {
		b = append(b, a.Peers[i].PublicKey[:]...)
		b = compact.AppendIPv4Array(b, a.Peers[i].RelayAddresses)
	}
	return b, nil
}

// UnmarshalBinary decodes a Result's data.
func (a *Announcers) UnmarshalBinary(p []byte) error {
	r := compact.NewReader(p)
	a.Token = r.Fixed32()
	a.From = decodeNode(r)
	a.To = decodeNode(r)
	n := r.ArrayLen(PublicKeySize + 1)
	a.Peers = nil
	if n > 0 {
		a.Peers = make([]Peer, n)
		for i := range a.Peers {
			a.Peers[i].PublicKey = r.Fixed32()
			a.Peers[i].RelayAddresses = r.IPv4Array()
		}
	}
	if err := r.Err(); err != nil {
		return fmt.Errorf("relay: decode announcers: %w", err)
	}
	return nil
}
