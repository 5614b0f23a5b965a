//go:build amd64 && !purego

package secretstream

// polyWideMin is the fewest chunks worth the AVX-512 code: below it,
// setting up r's powers costs more than the poly1305 package's AVX2 code
// saves.
const polyWideMin = 2

// polyTable is what polyBlocks8 multiplies by, in 26-bit limbs, one
// 64-bit lane per block: r^8 in every lane (limbs 0-4, then 5 times limbs
// 1-4), and for the last chunk each lane's own power (the same layout).
type polyTable [18][8]uint64

// laneBlock is which block of a chunk each lane takes: the order the
// in-lane unpacking of two 64-byte loads leaves them in.
var laneBlock = [8]int{0, 4, 1, 5, 2, 6, 3, 7}

// polyBlocks8 runs h = (h + chunk) · r^8 from h = 0 over n chunks of eight
// blocks, the last times each lane's own power instead, and stores each
// lane's h in 26-bit limbs: their sum is h after the n chunks.
//
//go:noescape
func polyBlocks8(msg *byte, n int, tab *polyTable, out *[5][8]uint64)

// wide takes the message's whole chunks and returns the rest, when the
// CPU has AVX-512 and there are enough of them; else it takes nothing and
// reports false.
func (p *polyState) wide(msg []byte) ([]byte, bool) {
	n := len(msg) / polyChunk
	if !wide || n < polyWideMin {
		return msg, false
	}
	// r^1 .. r^8, each reduced mod p, in 26-bit limbs.
	var pow [9][5]uint64
	h0, h1, h2 := p.r0, p.r1, uint64(0)
	for k := 1; k <= 8; k++ {
		if k > 1 {
			h0, h1, h2 = mulR(h0, h1, h2, p.r0, p.r1)
		}
		h0, h1, h2 = reduce(h0, h1, h2)
		pow[k] = limbs(h0, h1, h2)
	}
	var tab polyTable
	for j := range 8 {
		lane := pow[8-laneBlock[j]]
		for k := range 5 {
			tab[k][j] = pow[8][k]
			tab[9+k][j] = lane[k]
		}
		for k := 1; k < 5; k++ {
			tab[4+k][j] = 5 * pow[8][k]
			tab[13+k][j] = 5 * lane[k]
		}
	}
	var out [5][8]uint64
	polyBlocks8(&msg[0], n, &tab, &out)
	var l [5]uint64
	for k := range 5 {
		for j := range 8 {
			l[k] += out[k][j]
		}
	}
	// Each limb is below 2^30: their sum, l0 + l1·2^26 + ... + l4·2^104.
	p.h0, p.h1, p.h2 = fromLimbs(l)
	return msg[n*polyChunk:], true
}
