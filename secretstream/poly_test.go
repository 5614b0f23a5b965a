package secretstream

import (
	"crypto/rand"
	"testing"

	//lint:ignore SA1019 the one-time MAC is what the test holds ours to
	"golang.org/x/crypto/poly1305"
)

// TestPolyMatchesPoly1305: the tag, on the AVX-512 path where the CPU has
// it, is x/crypto's Poly1305 at every length around the eight-block
// chunks, with random keys, and with keys and messages of all ones (the
// largest limbs).
func TestPolyMatchesPoly1305(t *testing.T) { everyPath(t, testPoly) }

func testPoly(t *testing.T) {
	lengths := []int{0, 1, 15, 16, 17, 127, 128, 129, 255, 256, 257, 383, 384, 1000, 1024, 4096 + 13, 65536 + 80}
	for round := range 40 {
		for _, n := range lengths {
			var key [32]byte
			msg := make([]byte, n)
			if round == 0 {
				for i := range key {
					key[i] = 0xff
				}
				for i := range msg {
					msg[i] = 0xff
				}
			} else {
				rand.Read(key[:])
				rand.Read(msg)
			}
			var want [16]byte
			poly1305.Sum(&want, msg, &key)
			if got := polySum(msg, &key); got != want {
				t.Fatalf("round %d, %d bytes: tag %x, want %x", round, n, got, want)
			}
		}
	}
}

func BenchmarkPoly(b *testing.B) {
	var key [32]byte
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		polySum(buf, &key)
	}
}

// TestPolyMACInPieces: the tag of a message given in pieces, of sizes
// that cut blocks and chunks anywhere and give the AVX-512 code runs of
// chunks after blocks already taken, is x/crypto's Poly1305 of the whole.
func TestPolyMACInPieces(t *testing.T) { everyPath(t, testPolyMAC) }

func testPolyMAC(t *testing.T) {
	cuts := [][]int{{1}, {15}, {16}, {17}, {255}, {256}, {257}, {3, 1000}, {129, 4096, 7}, {70_000}}
	for round := range 20 {
		for _, n := range []int{0, 1, 16, 255, 256, 257, 1000, 4096 + 13, 70_001} {
			for _, cut := range cuts {
				var key [32]byte
				msg := make([]byte, n)
				if round == 0 {
					for i := range key {
						key[i] = 0xff
					}
					for i := range msg {
						msg[i] = 0xff
					}
				} else {
					rand.Read(key[:])
					rand.Read(msg)
				}
				var want [16]byte
				poly1305.Sum(&want, msg, &key)
				m := newPolyMAC(&key)
				for off, i := 0, 0; off < n; i++ {
					k := min(cut[i%len(cut)], n-off)
					m.write(msg[off : off+k])
					off += k
				}
				if got := m.sum(); got != want {
					t.Fatalf("round %d, %d bytes in pieces of %v: tag %x, want %x", round, n, cut, got, want)
				}
			}
		}
	}
}
