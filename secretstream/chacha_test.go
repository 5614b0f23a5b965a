package secretstream

import (
	"bytes"
	"crypto/rand"
	"testing"

	"golang.org/x/crypto/chacha20"
)

// TestKeyStreamMatchesChaCha20: the keystream, on the AVX-512 path where
// the CPU has it, is RFC 8439 ChaCha20's from the block counter given, at
// every length around the sixteen-block chunks, in place and not.
func TestKeyStreamMatchesChaCha20(t *testing.T) { everyPath(t, testKeyStream) }

// everyPath runs test on each path this build has: the narrow one
// (x/crypto's Poly1305, aead's ChaCha20), Poly1305's AVX2 one and the
// AVX-512 one where the CPU has them. The purego build's path is tested
// by running the package's tests with -tags purego.
func everyPath(t *testing.T, test func(*testing.T)) {
	hasWide, hasAVX2 := wide, polyAVX2
	defer func() { wide, polyAVX2 = hasWide, hasAVX2 }()
	for _, path := range []struct {
		name       string
		wide, avx2 bool
	}{{"narrow", false, false}, {"avx2", false, true}, {"wide", true, false}} {
		if path.wide && !hasWide || path.avx2 && !hasAVX2 {
			t.Logf("no %s code on this machine or in this build: that path is not tested", path.name)
			continue
		}
		wide, polyAVX2 = path.wide, path.avx2
		t.Run(path.name, test)
	}
}

func testKeyStream(t *testing.T) {
	var key [KeySize]byte
	var nonce [12]byte
	for i, n := range []int{0, 1, 63, 64, 65, 127, 128, 1023, 1024, 1025, 2047, 2048, 2049, 16*1024 + 17, 65536 + 128 + 31} {
		counter := uint32(i % 3) // 0, 1 and 2, the counters seal and open use
		rand.Read(key[:])
		rand.Read(nonce[:])
		src := make([]byte, n)
		rand.Read(src)
		want := make([]byte, n)
		c, err := chacha20.NewUnauthenticatedCipher(key[:], nonce[:])
		if err != nil {
			t.Fatal(err)
		}
		c.SetCounter(counter)
		c.XORKeyStream(want, src)
		got := make([]byte, n)
		xorKeyStream(got, src, &nonce, &key, counter)
		if !bytes.Equal(got, want) {
			t.Fatalf("%d bytes from block %d: keystream differs at byte %d", n, counter, firstDiff(got, want))
		}
		xorKeyStreamNarrow(got, src, &nonce, &key, counter)
		if !bytes.Equal(got, want) {
			t.Fatalf("%d bytes from block %d, narrow: keystream differs at byte %d", n, counter, firstDiff(got, want))
		}
		xorKeyStream(src, src, &nonce, &key, counter)
		if !bytes.Equal(src, want) {
			t.Fatalf("%d bytes from block %d in place: keystream differs at byte %d", n, counter, firstDiff(src, want))
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
		xorKeyStream(buf, buf, &nonce, &key, 0)
	}
}
