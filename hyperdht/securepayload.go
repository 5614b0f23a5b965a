package hyperdht

import (
	"crypto/rand"
	"net/netip"

	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/nacl/secretbox"
)

// HolepunchSecretOf is the key of a connection's holepunch payloads:
// BLAKE2b-256 of NSPeerHolepunch keyed with the Noise handshake hash, as
// hyperdht's noise-wrap derives it.
func HolepunchSecretOf(handshakeHash [64]byte) [32]byte {
	h, _ := blake2b.New256(handshakeHash[:])
	h.Write(NSPeerHolepunch[:])
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// securePayload seals the holepunch payloads of one connection, as
// hyperdht's secure-payload: a 24-byte random nonce, then the payload in
// libsodium's secretbox (XSalsa20-Poly1305, tag first). Its tokens prove
// to a peer that we saw its address: BLAKE2b-256 of the dotted host keyed
// with a secret of ours.
type securePayload struct {
	shared [32]byte
	local  [32]byte
}

func newSecurePayload(secret [32]byte) *securePayload {
	p := &securePayload{shared: secret}
	rand.Read(p.local[:])
	return p
}

func (p *securePayload) encrypt(m *HolepunchPayload) []byte {
	var nonce [24]byte
	rand.Read(nonce[:])
	return secretbox.Seal(nonce[:], m.Encode(nil), &nonce, &p.shared)
}

// decrypt opens and decodes b, or returns nil.
func (p *securePayload) decrypt(b []byte) *HolepunchPayload {
	if len(b) <= 24+secretbox.Overhead {
		return nil
	}
	var nonce [24]byte
	copy(nonce[:], b)
	plain, ok := secretbox.Open(nil, b[24:], &nonce, &p.shared)
	if !ok {
		return nil
	}
	var m HolepunchPayload
	if m.Decode(plain) != nil {
		return nil
	}
	return &m
}

func (p *securePayload) token(addr netip.AddrPort) [32]byte {
	h, _ := blake2b.New256(p.local[:])
	h.Write([]byte(addr.Addr().String()))
	var out [32]byte
	h.Sum(out[:0])
	return out
}
