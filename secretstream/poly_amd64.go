//go:build amd64 && !purego

package secretstream

import "golang.org/x/sys/cpu"

// polyWideMin is the fewest chunks worth the AVX-512 code: below it,
// setting up r's powers costs more than x/crypto's code saves.
const polyWideMin = 2

// polyAVX2 reports whether the four-lane AVX2 code runs where the AVX-512
// code does not; the tests turn it off to check x/crypto's path too. It
// takes a 32 KiB message at 5.4 GB/s where x/crypto's (scalar on amd64)
// takes 2.4, on an AMD EPYC without AVX-512: sealing and opening a 64 KiB
// message there took 75 µs against 112.
var polyAVX2 = cpu.X86.HasAVX2

// polyAVX2Min is the fewest four-block chunks worth the AVX2 code: below
// about 1.3 KiB, setting up r's powers and the table (some 300 ns) costs
// more than the code saves.
const polyAVX2Min = 24

// polyTable is what polyBlocks8 multiplies by, in 26-bit limbs, one
// 64-bit lane per block: r^8 in every lane (limbs 0-4, then 5 times limbs
// 1-4), and for the last chunk each lane's own power (the same layout).
type polyTable [18][8]uint64

// polyTable4 is polyTable for polyBlocks4: r^4 in every lane.
type polyTable4 [18][4]uint64

// laneBlock is which block of a chunk each lane takes: the order the
// in-lane unpacking of two 64-byte loads leaves them in; laneBlock4 is
// the same for two 32-byte loads.
var (
	laneBlock  = [8]int{0, 4, 1, 5, 2, 6, 3, 7}
	laneBlock4 = [4]int{0, 2, 1, 3}
)

// polyBlocks8 runs h = (h + chunk) · r^8 from h = 0 over n chunks of eight
// blocks, the last times each lane's own power instead, and stores each
// lane's h in 26-bit limbs: their sum is h after the n chunks.
//
//go:noescape
func polyBlocks8(msg *byte, n int, tab *polyTable, out *[5][8]uint64)

// polyBlocks4 is polyBlocks8 with AVX2, over chunks of four blocks.
//
//go:noescape
func polyBlocks4(msg *byte, n int, tab *polyTable4, out *[5][4]uint64)

// polyVector reports whether either vector code runs.
func polyVector() bool { return wide || polyAVX2 }

// rPowers sets pow[1..k] to r^1 .. r^k, each reduced mod p, in 26-bit
// limbs.
func (p *polyState) rPowers(pow *[9][5]uint64, k int) {
	h0, h1, h2 := p.r0, p.r1, uint64(0)
	for i := 1; i <= k; i++ {
		if i > 1 {
			h0, h1, h2 = mulR(h0, h1, h2, p.r0, p.r1)
		}
		h0, h1, h2 = reduce(h0, h1, h2)
		pow[i] = limbs(h0, h1, h2)
	}
}

// wide takes the message's whole chunks and returns the rest, when the
// CPU has AVX-512 or AVX2 and there are enough of them; else it takes
// nothing and reports false.
func (p *polyState) wide(msg []byte) ([]byte, bool) {
	switch {
	case wide && len(msg)/polyChunk >= polyWideMin:
		return p.wide8(msg), true
	case !wide && polyAVX2 && len(msg)/(polyChunk/2) >= polyAVX2Min:
		return p.wide4(msg), true
	}
	return msg, false
}

func (p *polyState) wide8(msg []byte) []byte {
	n := len(msg) / polyChunk
	var tab polyTable
	var out [5][8]uint64
	var rows [18][]uint64
	for i := range rows {
		rows[i] = tab[i][:]
	}
	p.fillTable(&rows, laneBlock[:])
	polyBlocks8(&msg[0], n, &tab, &out)
	p.sumLanes(out[0][:], out[1][:], out[2][:], out[3][:], out[4][:])
	return msg[n*polyChunk:]
}

func (p *polyState) wide4(msg []byte) []byte {
	const chunk = polyChunk / 2
	n := len(msg) / chunk
	var tab polyTable4
	var out [5][4]uint64
	var rows [18][]uint64
	for i := range rows {
		rows[i] = tab[i][:]
	}
	p.fillTable(&rows, laneBlock4[:])
	polyBlocks4(&msg[0], n, &tab, &out)
	p.sumLanes(out[0][:], out[1][:], out[2][:], out[3][:], out[4][:])
	return msg[n*chunk:]
}

// fillTable fills the rows of a polyTable or polyTable4, one column a
// lane, for chunks of len(lanes) blocks: r^len(lanes) in every lane and
// each lane's own power for the last chunk.
func (p *polyState) fillTable(rows *[18][]uint64, lanes []int) {
	k := len(lanes)
	var pow [9][5]uint64
	p.rPowers(&pow, k)
	for j, b := range lanes {
		lane := &pow[k-b]
		for i := range 5 {
			rows[i][j] = pow[k][i]
			rows[9+i][j] = lane[i]
		}
		for i := 1; i < 5; i++ {
			rows[4+i][j] = 5 * pow[k][i]
			rows[13+i][j] = 5 * lane[i]
		}
	}
}

// sumLanes sets h to the sum of the lanes' accumulators, given as each
// limb's lanes.
func (p *polyState) sumLanes(limbLanes ...[]uint64) {
	var l [5]uint64
	for k, lanes := range limbLanes {
		for _, v := range lanes {
			l[k] += v
		}
	}
	// Each limb is below 2^30: their sum, l0 + l1·2^26 + ... + l4·2^104.
	p.h0, p.h1, p.h2 = fromLimbs(l)
}
