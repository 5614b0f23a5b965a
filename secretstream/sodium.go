package secretstream

import (
	"crypto/subtle"
	"encoding/binary"
	"errors"

	"golang.org/x/crypto/chacha20"
)

// Sizes of libsodium's crypto_secretstream_xchacha20poly1305.
const (
	KeySize    = 32
	HeaderSize = 24
	// ABytes is what one message adds: an encrypted tag byte and a MAC.
	ABytes = 1 + tagSize
)

// tagSize is a Poly1305 tag's.
const tagSize = 16

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

// blockSize is a ChaCha20 block.
const blockSize = 64

// Buffer layout of one message while it is sealed or opened, so that the
// keystream, the MAC input and the wire frame all lie in one slice without
// copies: keystream block 0 (the Poly1305 key), block 1 (whose first byte
// encrypts the tag), the message, then room for the MAC input's tail.
const (
	msgOffset = 2 * blockSize // where the message starts
	tailRoom  = 15 + 16       // the MAC input's zero padding and lengths
)

// bufferSize is the buffer a message of n bytes needs.
func bufferSize(n int) int { return msgOffset + n + tailRoom }

// sodiumState is one direction of crypto_secretstream_xchacha20poly1305.
//
// For each message libsodium takes ChaCha20 (IETF) keystream block 0 as the
// Poly1305 key, encrypts the tag byte with block 1 and the message from
// block 2 on, and MACs the whole of block 1 (the encrypted tag and 63 bytes
// of keystream), the ciphertext, len(ciphertext) mod 16 zero bytes (not the
// RFC 8439 padding) and the two lengths. ChaCha20 in AVX-512 (chacha_amd64.s)
// or the chacha package's AVX2, and Poly1305 in AVX-512 (poly_amd64.s),
// are what make this faster than libsodium.
type sodiumState struct {
	key   [KeySize]byte
	nonce [12]byte // 4-byte counter ‖ 8-byte inonce
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
}

// mac computes the MAC of buf's block 1 and n message bytes, writing the
// padding and lengths into the tail room first.
func mac(buf []byte, n int, polyKey [32]byte) [tagSize]byte {
	pad := n & 0xf
	tail := buf[msgOffset+n : msgOffset+n+pad+16]
	clear(tail)
	binary.LittleEndian.PutUint64(tail[pad+8:], uint64(blockSize+n))
	return polySum(buf[blockSize:msgOffset+n+pad+16], &polyKey)
}

// seal encrypts the message p into buf[msgOffset:], reading p once and
// not copying it first. On return buf[msgOffset-1] is the encrypted tag,
// then come the ciphertext and the 16-byte MAC: the frame body is
// buf[msgOffset-1 : msgOffset+len(p)+16].
func (s *sodiumState) seal(buf, p []byte, tag byte) {
	n := len(p)
	// Blocks 0 and 1, the Poly1305 key and the tag's block, encipher zeros.
	clear(buf[:msgOffset])
	xorKeyStream(buf[:msgOffset], buf[:msgOffset], &s.nonce, &s.key, 0)
	xorKeyStream(buf[msgOffset:msgOffset+n], p, &s.nonce, &s.key, msgOffset/blockSize)
	buf[blockSize] ^= tag
	m := mac(buf, n, [32]byte(buf[:32]))
	copy(buf[msgOffset+n:], m[:])
	buf[msgOffset-1] = buf[blockSize]
	s.advance(&m, tag)
}

// open authenticates and decrypts the body at buf[msgOffset-1:] (encrypted
// tag, n bytes of ciphertext, MAC) in place; the bytes before it are
// scratch. On success the plaintext is at buf[msgOffset:msgOffset+n].
func (s *sodiumState) open(buf []byte, n int) (tag byte, err error) {
	var got [tagSize]byte
	copy(got[:], buf[msgOffset+n:])
	encTag := buf[msgOffset-1]
	var ks [msgOffset]byte
	xorKeyStream(ks[:], ks[:], &s.nonce, &s.key, 0)
	copy(buf[blockSize:msgOffset], ks[blockSize:])
	buf[blockSize] = encTag
	want := mac(buf, n, [32]byte(ks[:32]))
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return 0, ErrDecrypt
	}
	clear(buf[:msgOffset])
	xorKeyStream(buf[:msgOffset+n], buf[:msgOffset+n], &s.nonce, &s.key, 0)
	tag = encTag ^ ks[blockSize]
	s.advance(&got, tag)
	return tag, nil
}

func (s *sodiumState) advance(mac *[tagSize]byte, tag byte) {
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

// sealer seals one message of a length known up front in parts of any
// size, for a writer that learns the message's bytes a part at a time:
// the wire bytes are those seal makes of the whole.
type sealer struct {
	s    *sodiumState
	mac  *polyMAC
	n    int             // the message's length
	off  int             // message bytes sealed so far
	ks   [blockSize]byte // keystream of the block off is in, once begun
	tag  byte
	head byte // the encrypted tag
}

// frameHead is the start of the message's frame: the 3-byte length of
// its body and the encrypted tag.
func (z *sealer) frameHead() [4]byte {
	body := 1 + z.n + tagSize
	return [4]byte{byte(body), byte(body >> 8), byte(body >> 16), z.head}
}

// begin starts sealing a message of n bytes with tag.
func (s *sodiumState) begin(n int, tag byte) *sealer {
	var kb [msgOffset]byte
	xorKeyStream(kb[:], kb[:], &s.nonce, &s.key, 0)
	kb[blockSize] ^= tag
	z := &sealer{s: s, mac: newPolyMAC((*[32]byte)(kb[:32])), n: n, tag: tag, head: kb[blockSize]}
	z.mac.write(kb[blockSize:msgOffset])
	return z
}

// part encrypts the message's next len(p) bytes into dst.
func (z *sealer) part(dst, p []byte) {
	out := dst[:len(p)]
	for len(p) > 0 {
		block, within := z.off/blockSize, z.off%blockSize
		if within == 0 && len(p) >= blockSize {
			whole := len(p) &^ (blockSize - 1)
			xorKeyStream(dst[:whole], p[:whole], &z.s.nonce, &z.s.key, uint32(msgOffset/blockSize+block))
			dst, p, z.off = dst[whole:], p[whole:], z.off+whole
			continue
		}
		if within == 0 {
			z.ks = [blockSize]byte{}
			xorKeyStream(z.ks[:], z.ks[:], &z.s.nonce, &z.s.key, uint32(msgOffset/blockSize+block))
		}
		k := min(blockSize-within, len(p))
		for i := range k {
			dst[i] = p[i] ^ z.ks[within+i]
		}
		dst, p, z.off = dst[k:], p[k:], z.off+k
	}
	z.mac.write(out)
}

// finish returns the MAC, once all n bytes are sealed, and moves the
// state on to the next message.
func (z *sealer) finish() [tagSize]byte {
	var tail [15 + 16]byte
	pad := z.n & 0xf
	binary.LittleEndian.PutUint64(tail[pad+8:], uint64(blockSize+z.n))
	z.mac.write(tail[:pad+16])
	m := z.mac.sum()
	z.s.advance(&m, z.tag)
	return m
}
