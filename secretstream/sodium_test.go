package secretstream

import (
	"bytes"
	"encoding/binary"
	"testing"

	"golang.org/x/crypto/chacha20"
	//lint:ignore SA1019 the one-time MAC is exactly what the reference construction needs
	xpoly "golang.org/x/crypto/poly1305"
)

// refSeal is crypto_secretstream_xchacha20poly1305_push written plainly
// with x/crypto's generic ChaCha20 and Poly1305, for comparison.
func refSeal(key [32]byte, nonce [12]byte, tag byte, m []byte) (encTag byte, c []byte, mac [16]byte) {
	ciph, _ := chacha20.NewUnauthenticatedCipher(key[:], nonce[:])
	var block [64]byte
	ciph.XORKeyStream(block[:], block[:])
	var pk [32]byte
	copy(pk[:], block[:32])
	poly := xpoly.New(&pk)
	block = [64]byte{tag}
	ciph.XORKeyStream(block[:], block[:])
	poly.Write(block[:])
	c = make([]byte, len(m))
	ciph.XORKeyStream(c, m)
	poly.Write(c)
	poly.Write(make([]byte, len(m)&0xf))
	var lens [16]byte
	binary.LittleEndian.PutUint64(lens[8:], uint64(64+len(m)))
	poly.Write(lens[:])
	poly.Sum(mac[:0])
	return block[0], c, mac
}

// TestSealMatchesReference checks the fast seal and open against the plain
// construction at every length around the block and padding boundaries.
func TestSealMatchesReference(t *testing.T) {
	var key [KeySize]byte
	var hdr [HeaderSize]byte
	for i := range key {
		key[i] = byte(i * 7)
	}
	hdr[3] = 1
	var tx, rx sodiumState
	tx.init(&key, &hdr)
	rx.init(&key, &hdr)
	lengths := []int{}
	for n := 0; n <= 300; n++ {
		lengths = append(lengths, n)
	}
	lengths = append(lengths, 1023, 1024, 1025, 4096+17, 65535, 65536, 100_003)
	for _, n := range lengths {
		m := bytes.Repeat([]byte{byte(n)}, n)
		wantTag, wantC, wantMAC := refSeal(tx.key, tx.nonce, TagMessage, m)
		buf := make([]byte, bufferSize(n))
		tx.seal(buf, m, TagMessage)
		if buf[msgOffset-1] != wantTag || !bytes.Equal(buf[msgOffset:msgOffset+n], wantC) || !bytes.Equal(buf[msgOffset+n:msgOffset+n+16], wantMAC[:]) {
			t.Fatalf("length %d: seal differs from reference", n)
		}
		if _, err := rx.open(buf, n); err != nil || !bytes.Equal(buf[msgOffset:msgOffset+n], m) {
			t.Fatalf("length %d: open: %v", n, err)
		}
	}
}

// TestSealInParts: a message sealed in parts, of any sizes and at any
// offsets into a keystream block, is sealed to the bytes seal makes of it
// whole, and leaves the state where seal does.
func TestSealInParts(t *testing.T) {
	var key [KeySize]byte
	var hdr [HeaderSize]byte
	key[5], hdr[9] = 3, 4
	var whole, parted sodiumState
	whole.init(&key, &hdr)
	parted.init(&key, &hdr)
	cuts := [][]int{{1}, {63}, {64}, {65}, {7, 57, 64, 1}, {100, 28}, {4096}, {13, 4000, 1}}
	for _, n := range []int{0, 1, 63, 64, 65, 127, 1000, 4096 + 17, 70_001} {
		for _, cut := range cuts {
			m := make([]byte, n)
			for i := range m {
				m[i] = byte(i * 31)
			}
			buf := make([]byte, bufferSize(n))
			whole.seal(buf, m, TagMessage)
			z := parted.begin(n, TagMessage)
			got := make([]byte, n)
			for off, i := 0, 0; off < n; i++ {
				k := min(cut[i%len(cut)], n-off)
				z.part(got[off:], m[off:off+k])
				off += k
			}
			mac := z.finish()
			if z.head != buf[msgOffset-1] || !bytes.Equal(got, buf[msgOffset:msgOffset+n]) || !bytes.Equal(mac[:], buf[msgOffset+n:msgOffset+n+16]) {
				t.Fatalf("length %d in parts of %v: sealed otherwise than whole", n, cut)
			}
			if parted.nonce != whole.nonce {
				t.Fatalf("length %d: the state moved on otherwise", n)
			}
		}
	}
}
