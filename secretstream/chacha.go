package secretstream

import "github.com/aead/chacha20/chacha"

// xorKeyStreamNarrow is xorKeyStream without the AVX-512 code.
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
