//go:build amd64 && !purego

package secretstream

import (
	"crypto/subtle"
	"encoding/binary"

	"github.com/aead/chacha20/chacha"
	"golang.org/x/sys/cpu"
)

// wideChunk is what one call of the AVX-512 code enciphers: sixteen blocks.
const wideChunk = 16 * blockSize

// wide reports whether the AVX-512 code runs: where the CPU has it, and
// the tests turn it off to check the narrow path too. It enciphers about
// twice as fast as the AVX2 code of the chacha package.
var wide = cpu.X86.HasAVX512F

// xorBlocks16 XORs n chunks of sixteen ChaCha20 blocks of keystream from
// state into src and writes them to dst, advancing the block counter,
// state[12], by 16n.
//
//go:noescape
func xorBlocks16(dst, src *byte, n int, state *[16]uint32)

// xorKeyStream XORs src into dst, which has its length and is src or does
// not overlap it, with the ChaCha20 (RFC 8439) keystream of key and nonce
// from block counter on.
func xorKeyStream(dst, src []byte, nonce *[12]byte, key *[KeySize]byte, counter uint32) {
	n := len(src) / wideChunk
	if !wide || n == 0 {
		xorKeyStreamNarrow(dst, src, nonce, key, counter)
		return
	}
	st := [16]uint32{0x61707865, 0x3320646e, 0x79622d32, 0x6b206574} // "expand 32-byte k"
	for i := range 8 {
		st[4+i] = binary.LittleEndian.Uint32(key[4*i:])
	}
	for i := range 3 {
		st[13+i] = binary.LittleEndian.Uint32(nonce[4*i:])
	}
	st[12] = counter
	xorBlocks16(&dst[0], &src[0], n, &st)
	if done := n * wideChunk; done < len(src) {
		var ks [wideChunk]byte
		xorBlocks16(&ks[0], &ks[0], 1, &st)
		subtle.XORBytes(dst[done:], src[done:], ks[:])
	}
}

// xorKeyStreamNarrow is xorKeyStream without the AVX-512 code. It is
// aead/chacha20's, for its SSSE3 and AVX2 code: x/crypto's ChaCha20 has
// no amd64 assembly, and runs at a third of the speed here.
func xorKeyStreamNarrow(dst, src []byte, nonce *[12]byte, key *[KeySize]byte, counter uint32) {
	if counter == 0 {
		chacha.XORKeyStream(dst, src, nonce[:], key[:], 20)
		return
	}
	c, err := chacha.NewCipher(nonce[:], key[:], 20)
	if err != nil {
		panic(err) // the nonce and key sizes are fixed by their types
	}
	c.SetCounter(uint64(counter))
	c.XORKeyStream(dst, src)
}
