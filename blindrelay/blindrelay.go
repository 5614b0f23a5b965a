// Package blindrelay is the blind-relay protocol (npm blind-relay 1.x), the
// fallback of two HyperDHT peers that cannot holepunch: both connect to a
// relay node and ask it, over a protomux channel "blind-relay" whose id is
// the asking peer's public key, to pair a UDX stream of theirs under a
// token they share. Once both sides asked, the relay makes a UDX stream
// for each, answers each with the id of its stream, and forwards every
// packet of one to the other. The peers' SecretStream runs end to end over
// the pair, so the relay sees only ciphertext.
//
// Messages: pair (type 0) is a bitfield (bit 0: the asker is the
// connection's initiator), the 32-byte token, the stream id and a sequence
// number (0), as compact uints; unpair (type 1) is a bitfield and the token.
package blindrelay

import (
	"errors"
	"fmt"

	"github.com/dhtrelay/dht-relay/compact"
)

// Protocol is the protomux protocol name.
const Protocol = "blind-relay"

// Message types on the channel.
const (
	typePair   = 0
	typeUnpair = 1
)

// Errors.
var (
	// ErrClosed means the relay channel closed before the pairing ended.
	ErrClosed = errors.New("blindrelay: channel closed")
	// ErrAlreadyPairing means the token is already being paired here.
	ErrAlreadyPairing = errors.New("blindrelay: already pairing this token")
)

// Pair asks for (from a peer) or announces (from the relay) a paired
// stream: ID is the sender's UDX stream id.
type Pair struct {
	IsInitiator bool
	Token       [32]byte
	ID          uint64
	Seq         uint64
}

// Encode appends the encoding.
func (m *Pair) Encode(b []byte) []byte {
	var flags uint64
	if m.IsInitiator {
		flags = 1
	}
	b = compact.AppendUint(b, flags)
	b = append(b, m.Token[:]...)
	return compact.AppendUint(compact.AppendUint(b, m.ID), m.Seq)
}

// Decode decodes p; a bitfield is a compact uint on the wire.
func (m *Pair) Decode(p []byte) error {
	r := compact.NewReader(p)
	m.IsInitiator = r.Uint()&1 != 0
	m.Token = r.Fixed32()
	m.ID, m.Seq = r.Uint(), r.Uint()
	if err := r.Err(); err != nil {
		return fmt.Errorf("blindrelay: decode pair: %w", err)
	}
	return nil
}

// Unpair cancels a pairing.
type Unpair struct {
	Token [32]byte
}

// Encode appends the encoding.
func (m *Unpair) Encode(b []byte) []byte {
	return append(compact.AppendUint(b, 0), m.Token[:]...)
}

// Decode decodes p.
func (m *Unpair) Decode(p []byte) error {
	r := compact.NewReader(p)
	r.Uint()
	m.Token = r.Fixed32()
	if err := r.Err(); err != nil {
		return fmt.Errorf("blindrelay: decode unpair: %w", err)
	}
	return nil
}
