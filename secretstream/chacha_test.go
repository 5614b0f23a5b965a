package secretstream

import (
	"bytes"
	"crypto/rand"
	"testing"

	"golang.org/x/crypto/chacha20"
)

// TestKeyStreamMatchesChaCha20: the keystream, on the AVX-512 path where
// the CPU has it, is RFC 8439 ChaCha20's from block 0, at every length
// around the sixteen-block chunks, in place and not.
func TestKeyStreamMatchesChaCha20(t *testing.T) {
	t.Logf("AVX-512 path: %v", wide)
	var key [KeySize]byte
	var nonce [12]byte
	for _, n := range []int{0, 1, 63, 64, 65, 127, 128, 1023, 1024, 1025, 2047, 2048, 2049, 16*1024 + 17, 65536 + 128 + 31} {
		rand.Read(key[:])
		rand.Read(nonce[:])
		src := make([]byte, n)
		rand.Read(src)
		want := make([]byte, n)
		c, err := chacha20.NewUnauthenticatedCipher(key[:], nonce[:])
		if err != nil {
			t.Fatal(err)
		}
		c.XORKeyStream(want, src)
		got := make([]byte, n)
		xorKeyStream(got, src, &nonce, &key)
		if !bytes.Equal(got, want) {
			t.Fatalf("%d bytes: keystream differs at byte %d", n, firstDiff(got, want))
		}
		xorKeyStream(src, src, &nonce, &key)
		if !bytes.Equal(src, want) {
			t.Fatalf("%d bytes in place: keystream differs at byte %d", n, firstDiff(src, want))
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

func BenchmarkKeyStream(b *testing.B) {
	var key [KeySize]byte
	var nonce [12]byte
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		xorKeyStream(buf, buf, &nonce, &key)
	}
}
