package noise

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/chacha20poly1305"
)

const (
	hashLen  = 64  // BLAKE2b-512
	blockLen = 128 // BLAKE2b block size, the HMAC block size
	keyLen   = 32
	macLen   = 16
	// MaxMessageSize is Noise's limit on one handshake message.
	MaxMessageSize = 65535
)

// ErrDecrypt means a handshake message failed authentication.
var ErrDecrypt = errors.New("noise: message authentication failed")

func hmacBlake2b(key []byte, parts ...[]byte) [hashLen]byte {
	var k [blockLen]byte
	if len(key) > blockLen {
		sum := blake2b.Sum512(key)
		copy(k[:], sum[:])
	} else {
		copy(k[:], key)
	}
	var ipad, opad [blockLen]byte
	for i := range k {
		ipad[i] = k[i] ^ 0x36
		opad[i] = k[i] ^ 0x5c
	}
	inner, _ := blake2b.New512(nil)
	inner.Write(ipad[:])
	for _, p := range parts {
		inner.Write(p)
	}
	var out [hashLen]byte
	inner.Sum(out[:0])
	outer, _ := blake2b.New512(nil)
	outer.Write(opad[:])
	outer.Write(out[:])
	outer.Sum(out[:0])
	return out
}

// hkdf2 is Noise's HKDF with two outputs and empty info, as noise-handshake
// computes it: T1 = HMAC(prk, 0x01), T2 = HMAC(prk, T1 ‖ 0x02).
func hkdf2(ck, ikm []byte) (o1, o2 [hashLen]byte) {
	prk := hmacBlake2b(ck, ikm)
	o1 = hmacBlake2b(prk[:], []byte{1})
	o2 = hmacBlake2b(prk[:], o1[:], []byte{2})
	return o1, o2
}

type symmetricState struct {
	h      [hashLen]byte
	ck     [hashLen]byte
	k      [keyLen]byte
	hasKey bool
	n      uint64
}

func (s *symmetricState) init(protocol string) {
	if len(protocol) <= hashLen {
		copy(s.h[:], protocol)
	} else {
		s.h = blake2b.Sum512([]byte(protocol))
	}
	s.ck = s.h
}

func (s *symmetricState) mixHash(data []byte) {
	d, _ := blake2b.New512(nil)
	d.Write(s.h[:])
	d.Write(data)
	d.Sum(s.h[:0])
}

func (s *symmetricState) mixKey(ikm []byte) {
	ck, k := hkdf2(s.ck[:], ikm)
	s.ck = ck
	copy(s.k[:], k[:keyLen])
	s.hasKey = true
	s.n = 0
}

func (s *symmetricState) nonce() []byte {
	var n [chacha20poly1305.NonceSize]byte
	binary.LittleEndian.PutUint64(n[4:], s.n)
	return n[:]
}

func (s *symmetricState) encryptAndHash(dst, plaintext []byte) ([]byte, error) {
	start := len(dst)
	if !s.hasKey {
		dst = append(dst, plaintext...)
	} else {
		if len(plaintext)+macLen > MaxMessageSize {
			return nil, fmt.Errorf("noise: ciphertext of %d bytes exceeds %d", len(plaintext)+macLen, MaxMessageSize)
		}
		aead, _ := chacha20poly1305.New(s.k[:])
		dst = aead.Seal(dst, s.nonce(), plaintext, s.h[:])
		s.n++
	}
	s.mixHash(dst[start:])
	return dst, nil
}

func (s *symmetricState) decryptAndHash(ciphertext []byte) ([]byte, error) {
	var plaintext []byte
	if !s.hasKey {
		plaintext = append([]byte(nil), ciphertext...)
	} else {
		if len(ciphertext) > MaxMessageSize {
			return nil, fmt.Errorf("noise: ciphertext of %d bytes exceeds %d", len(ciphertext), MaxMessageSize)
		}
		aead, _ := chacha20poly1305.New(s.k[:])
		var err error
		plaintext, err = aead.Open(nil, s.nonce(), ciphertext, s.h[:])
		if err != nil {
			return nil, ErrDecrypt
		}
		s.n++
	}
	s.mixHash(ciphertext)
	return plaintext, nil
}

func (s *symmetricState) split() (k1, k2 [keyLen]byte) {
	o1, o2 := hkdf2(s.ck[:], nil)
	copy(k1[:], o1[:keyLen])
	copy(k2[:], o2[:keyLen])
	return k1, k2
}
