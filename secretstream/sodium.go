package secretstream

import (
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"errors"

	"golang.org/x/crypto/chacha20"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/poly1305" //nolint:staticcheck // the one-time MAC libsodium's secretstream is built on
)

// Sizes of libsodium's crypto_secretstream_xchacha20poly1305.
const (
	KeySize    = 32
	HeaderSize = 24
	// ABytes is what one message adds: an encrypted tag byte and a MAC.
	ABytes = 1 + poly1305.TagSize
)

// Tags of crypto_secretstream_xchacha20poly1305. The stream sends only
// TagMessage; a received TagRekey rekeys as libsodium does.
const (
	TagMessage byte = 0
	TagPush    byte = 1
	TagRekey   byte = 2
	TagFinal   byte = 3
)

// ErrDecrypt means a message failed authentication.
var ErrDecrypt = errors.New("secretstream: message authentication failed")

// blockSize is the ChaCha20 block the tag byte is encrypted in.
const blockSize = 64

// sodiumState is one direction of crypto_secretstream_xchacha20poly1305.
//
// The message layout lets the fused ChaCha20-Poly1305 AEAD do the bulk
// encryption: libsodium encrypts the tag in keystream block 1 and the
// message from block 2 on, which is exactly what Seal does to the plaintext
// (tag, 63 zero bytes, message). Seal's own MAC is discarded, because
// libsodium pads the message to the MAC differently from RFC 8439 (by
// len mod 16 bytes, not up to the next multiple of 16), so the MAC is
// computed separately.
type sodiumState struct {
	key   [KeySize]byte
	nonce [chacha20poly1305.NonceSize]byte // 4-byte counter ‖ 8-byte inonce
	aead  cipher.AEAD
}

func (s *sodiumState) init(key *[KeySize]byte, header *[HeaderSize]byte) {
	sub, _ := chacha20.HChaCha20(key[:], header[:16])
	copy(s.key[:], sub)
	s.nonce = [12]byte{}
	copy(s.nonce[4:], header[16:])
	s.resetCounter()
}

func (s *sodiumState) resetCounter() {
	binary.LittleEndian.PutUint32(s.nonce[:4], 1)
	s.aead, _ = chacha20poly1305.New(s.key[:])
}

// keystream returns keystream blocks 0 and 1 for the current nonce: block 0
// keys Poly1305, block 1 encrypts the tag.
func (s *sodiumState) keystream() (ks [2 * blockSize]byte) {
	c, _ := chacha20.NewUnauthenticatedCipher(s.key[:], s.nonce[:])
	c.XORKeyStream(ks[:], ks[:])
	return ks
}

var zeroPad [16]byte

func (s *sodiumState) mac(polyKey []byte, block, c []byte) (tag [poly1305.TagSize]byte) {
	var k [32]byte
	copy(k[:], polyKey)
	m := poly1305.New(&k)
	m.Write(block)
	m.Write(c)
	m.Write(zeroPad[:len(c)&0xf])
	var lens [16]byte
	binary.LittleEndian.PutUint64(lens[8:], uint64(blockSize+len(c)))
	m.Write(lens[:])
	m.Sum(tag[:0])
	return tag
}

// seal encrypts in place. buf must hold blockSize bytes of room, the message
// at buf[blockSize:blockSize+n], and poly1305.TagSize bytes of capacity after
// it. On return buf[0] is the encrypted tag, buf[blockSize:blockSize+n] the
// ciphertext and the next 16 bytes the MAC.
func (s *sodiumState) seal(buf []byte, n int, tag byte) {
	ks := s.keystream()
	clear(buf[:blockSize])
	buf[0] = tag
	s.aead.Seal(buf[:0], s.nonce[:], buf[:blockSize+n], nil)
	mac := s.mac(ks[:32], buf[:blockSize], buf[blockSize:blockSize+n])
	copy(buf[blockSize+n:], mac[:])
	s.advance(&mac, tag)
}

// open authenticates and decrypts in place. buf[blockSize-1] holds the
// encrypted tag, buf[blockSize:blockSize+n] the ciphertext and the next 16
// bytes the MAC; the first blockSize-1 bytes are scratch. On success the
// plaintext is at buf[blockSize:blockSize+n].
func (s *sodiumState) open(buf []byte, n int) (tag byte, err error) {
	ks := s.keystream()
	buf[0] = buf[blockSize-1]
	copy(buf[1:blockSize], ks[blockSize+1:])
	var mac [poly1305.TagSize]byte
	copy(mac[:], buf[blockSize+n:])
	want := s.mac(ks[:32], buf[:blockSize], buf[blockSize:blockSize+n])
	if subtle.ConstantTimeCompare(mac[:], want[:]) != 1 {
		return 0, ErrDecrypt
	}
	// ChaCha20 is its own inverse; Seal's MAC lands on the verified one.
	s.aead.Seal(buf[:0], s.nonce[:], buf[:blockSize+n], nil)
	tag = buf[0]
	s.advance(&mac, tag)
	return tag, nil
}

func (s *sodiumState) advance(mac *[poly1305.TagSize]byte, tag byte) {
	for i := range 8 {
		s.nonce[4+i] ^= mac[i]
	}
	ctr := binary.LittleEndian.Uint32(s.nonce[:4]) + 1
	binary.LittleEndian.PutUint32(s.nonce[:4], ctr)
	if tag&TagRekey != 0 || ctr == 0 {
		s.rekey()
	}
}

// rekey derives a new key and inonce from the current ones, as
// crypto_secretstream_xchacha20poly1305_rekey does.
func (s *sodiumState) rekey() {
	var kn [KeySize + 8]byte
	copy(kn[:KeySize], s.key[:])
	copy(kn[KeySize:], s.nonce[4:])
	c, _ := chacha20.NewUnauthenticatedCipher(s.key[:], s.nonce[:])
	c.XORKeyStream(kn[:], kn[:])
	copy(s.key[:], kn[:KeySize])
	copy(s.nonce[4:], kn[KeySize:])
	s.resetCounter()
}
