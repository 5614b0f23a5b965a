package noise

import (
	"crypto/ed25519"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"

	"filippo.io/edwards25519"
)

// Key sizes of the Ed25519 key pairs used as Noise static and ephemeral keys.
const (
	PublicKeySize = ed25519.PublicKeySize  // 32
	SecretKeySize = ed25519.PrivateKeySize // 64: seed ‖ public key, as libsodium stores it
	DHSize        = 32
)

// ErrInvalidPoint is returned when a remote key is not a canonical point of
// the prime-order subgroup, or the shared secret is the identity; libsodium's
// crypto_scalarmult_ed25519_noclamp refuses the same inputs.
var ErrInvalidPoint = errors.New("noise: invalid ed25519 point")

// KeyPair is an Ed25519 key pair in libsodium's layout.
type KeyPair struct {
	Public [PublicKeySize]byte
	Secret [SecretKeySize]byte
}

// KeyPairFromSeed derives the key pair of a 32-byte seed, as
// crypto_sign_seed_keypair does.
func KeyPairFromSeed(seed [32]byte) KeyPair {
	var kp KeyPair
	sk := ed25519.NewKeyFromSeed(seed[:])
	copy(kp.Secret[:], sk)
	copy(kp.Public[:], sk[32:])
	return kp
}

// GenerateKeyPair makes a key pair from 32 bytes of rand.
func GenerateKeyPair(rand io.Reader) (KeyPair, error) {
	var seed [32]byte
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return KeyPair{}, fmt.Errorf("noise: generate key pair: %w", err)
	}
	return KeyPairFromSeed(seed), nil
}

// ValidPublicKey reports whether pk can be a peer's key in a handshake:
// a canonical point of the prime-order subgroup. Most random 32 bytes are
// not, and no server can hold such a key.
func ValidPublicKey(pk []byte) bool {
	_, err := remotePoint(pk)
	return err == nil
}

// remotePoint decodes a remote key as libsodium accepts it.
func remotePoint(remote []byte) (*edwards25519.Point, error) {
	if len(remote) != PublicKeySize {
		return nil, ErrInvalidPoint
	}
	p, err := new(edwards25519.Point).SetBytes(remote)
	if err != nil {
		return nil, ErrInvalidPoint
	}
	// SetBytes accepts non-canonical encodings; libsodium does not.
	if string(p.Bytes()) != string(remote) {
		return nil, ErrInvalidPoint
	}
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return nil, ErrInvalidPoint
	}
	lm1, _ := edwards25519.NewScalar().SetCanonicalBytes(groupOrderMinusOne[:])
	if new(edwards25519.Point).ScalarMult(lm1, p).Equal(new(edwards25519.Point).Negate(p)) != 1 {
		return nil, ErrInvalidPoint
	}
	return p, nil
}

// groupOrderMinusOne is ℓ−1 in little-endian, used to test that a point lies
// in the prime-order subgroup: [ℓ−1]P = −P exactly when [ℓ]P is the identity.
var groupOrderMinusOne = [32]byte{
	0xec, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
}

// DH is noise-curve-ed's Diffie-Hellman: the local scalar is the clamped first
// half of SHA-512(seed), as crypto_sign_ed25519_sk_to_curve25519 makes it, and
// the result is that scalar times the remote Ed25519 point, compressed. It is
// not X25519.
func DH(local *KeyPair, remote []byte) ([DHSize]byte, error) {
	var out [DHSize]byte
	p, err := remotePoint(remote)
	if err != nil {
		return out, err
	}
	id := edwards25519.NewIdentityPoint()
	// Reducing the clamped scalar mod ℓ is exact because p has prime order.
	h := sha512.Sum512(local.Secret[:32])
	s, _ := edwards25519.NewScalar().SetBytesWithClamping(h[:32])
	q := new(edwards25519.Point).ScalarMult(s, p)
	if q.Equal(id) == 1 {
		return out, ErrInvalidPoint
	}
	copy(out[:], q.Bytes())
	return out, nil
}
