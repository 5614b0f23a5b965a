//go:build !amd64 || purego

package secretstream

import "golang.org/x/crypto/chacha20"

// wide reports whether the AVX-512 code runs: it is amd64's only, and the
// tests may set it to no effect.
var wide = false

// xorKeyStream XORs src into dst, which has its length and is src or does
// not overlap it, with the ChaCha20 (RFC 8439) keystream of key and nonce
// from block counter on: x/crypto's, with its assembly where it has some
// and pure Go elsewhere (and under purego).
func xorKeyStream(dst, src []byte, nonce *[12]byte, key *[KeySize]byte, counter uint32) {
	c, err := chacha20.NewUnauthenticatedCipher(key[:], nonce[:])
	if err != nil {
		panic(err) // the nonce and key sizes are fixed by their types
	}
	c.SetCounter(counter)
	c.XORKeyStream(dst, src)
}

// xorKeyStreamNarrow is xorKeyStream: there is no wide code here.
func xorKeyStreamNarrow(dst, src []byte, nonce *[12]byte, key *[KeySize]byte, counter uint32) {
	xorKeyStream(dst, src, nonce, key, counter)
}
