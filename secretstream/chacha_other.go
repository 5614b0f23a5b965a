//go:build !amd64 || purego

package secretstream

// wide reports whether the AVX-512 code runs: it is amd64's only.
const wide = false

// xorKeyStream XORs src into dst, which has its length and is src or does
// not overlap it, with the ChaCha20 (RFC 8439) keystream of key and nonce
// from block counter on.
func xorKeyStream(dst, src []byte, nonce *[12]byte, key *[KeySize]byte, counter uint32) {
	xorKeyStreamNarrow(dst, src, nonce, key, counter)
}
