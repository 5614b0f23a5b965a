package secretstream

import (
	"encoding/binary"
	"math/bits"

	//lint:ignore SA1019 the one-time MAC is what secretstream's AEAD needs, not an AEAD of its own
	"golang.org/x/crypto/poly1305"
)

// Poly1305 (RFC 8439): h = (h + block) · r mod 2^130-5 over the message's
// 16-byte blocks, each with a 1 appended (a short last block is padded
// with a 1, then zeros), and the tag h + s mod 2^128. h is kept as three
// 64-bit words, reduced only partly between blocks.

// polyChunk is what one pass of the AVX-512 code takes: eight blocks, one
// per 64-bit lane (the AVX2 code takes half, in four).
const polyChunk = 8 * 16

// polyState is one MAC in progress.
type polyState struct {
	r0, r1     uint64 // r, clamped: below 2^60 each, r1 a multiple of 4
	s0, s1     uint64
	h0, h1, h2 uint64
}

func newPoly(key *[32]byte) polyState {
	return polyState{
		r0: binary.LittleEndian.Uint64(key[0:]) & 0x0ffffffc0fffffff,
		r1: binary.LittleEndian.Uint64(key[8:]) & 0x0ffffffc0ffffffc,
		s0: binary.LittleEndian.Uint64(key[16:]),
		s1: binary.LittleEndian.Uint64(key[24:]),
	}
}

// polySum is the Poly1305 tag of msg under key: the vector code's (AVX-512
// or AVX2) where it runs, with the generic code here for the blocks after
// its chunks; else x/crypto's (assembly on amd64 unless purego).
func polySum(msg []byte, key *[32]byte) [16]byte {
	p := newPoly(key)
	msg, ok := p.wide(msg)
	if !ok {
		var tag [16]byte
		poly1305.Sum(&tag, msg, key)
		return tag
	}
	for len(msg) >= 16 {
		p.block(binary.LittleEndian.Uint64(msg), binary.LittleEndian.Uint64(msg[8:]), 1)
		msg = msg[16:]
	}
	if len(msg) > 0 {
		var b [16]byte
		copy(b[:], msg)
		b[len(msg)] = 1
		p.block(binary.LittleEndian.Uint64(b[:]), binary.LittleEndian.Uint64(b[8:]), 0)
	}
	return p.tag()
}

// polyMAC is a Poly1305 tag over a message given in pieces of any size,
// for a sealer that learns the message a part at a time. Where vector
// code runs, each piece's whole chunks go to it, which starts
// from a tag of zero: the tag so far is carried over them as
// h·r^blocks + theirs. Elsewhere x/crypto's incremental MAC does it all.
type polyMAC struct {
	p       polyState
	narrow  *poly1305.MAC // when no vector code runs
	started bool          // p.h holds blocks already taken
	buf     [16]byte      // the start of a block not yet whole
	n       int           // bytes in buf
}

func newPolyMAC(key *[32]byte) *polyMAC {
	if !polyVector() {
		return &polyMAC{narrow: poly1305.New(key)}
	}
	return &polyMAC{p: newPoly(key)}
}

func (m *polyMAC) write(msg []byte) {
	if m.narrow != nil {
		m.narrow.Write(msg)
		return
	}
	if m.n > 0 {
		k := copy(m.buf[m.n:], msg)
		m.n, msg = m.n+k, msg[k:]
		if m.n < 16 {
			return
		}
		m.blocks(m.buf[:])
		m.n = 0
	}
	if len(msg) >= polyChunk {
		h0, h1, h2 := m.p.h0, m.p.h1, m.p.h2
		if rest, ok := m.p.wide(msg); ok {
			if m.started {
				// What came before, times r once for each block taken
				// since, plus the tag of those blocks alone.
				x := mulLimbs(limbs(reduce(h0, h1, h2)), powR(m.p.r0, m.p.r1, (len(msg)-len(rest))/16))
				a0, a1, a2 := fromLimbs(x)
				var c uint64
				m.p.h0, c = bits.Add64(m.p.h0, a0, 0)
				m.p.h1, c = bits.Add64(m.p.h1, a1, c)
				m.p.h2 += a2 + c
				m.p.h0, m.p.h1, m.p.h2 = reduce(m.p.h0, m.p.h1, m.p.h2)
			}
			m.started, msg = true, rest
		}
	}
	whole := len(msg) &^ 15
	m.blocks(msg[:whole])
	m.n = copy(m.buf[:], msg[whole:])
}

// blocks takes msg's whole blocks, one by one.
func (m *polyMAC) blocks(msg []byte) {
	for ; len(msg) >= 16; msg = msg[16:] {
		m.p.block(binary.LittleEndian.Uint64(msg), binary.LittleEndian.Uint64(msg[8:]), 1)
		m.started = true
	}
}

func (m *polyMAC) sum() [16]byte {
	var t [16]byte
	if m.narrow != nil {
		m.narrow.Sum(t[:0])
		return t
	}
	if m.n > 0 {
		var b [16]byte
		copy(b[:], m.buf[:m.n])
		b[m.n] = 1
		m.p.block(binary.LittleEndian.Uint64(b[:]), binary.LittleEndian.Uint64(b[8:]), 0)
	}
	return m.p.tag()
}

// powR is r^k mod p, in 26-bit limbs, by squaring and multiplying over
// k's bits (k is a length, not a secret).
func powR(r0, r1 uint64, k int) [5]uint64 {
	result := [5]uint64{1}
	base := limbs(r0, r1, 0)
	for ; k > 0; k >>= 1 {
		if k&1 == 1 {
			result = mulLimbs(result, base)
		}
		base = mulLimbs(base, base)
	}
	return result
}

// mulLimbs is a·b mod p, nearly reduced, for a and b in 26-bit limbs
// below about 2^26 each: every product is below 2^55, and a sum of five
// with the wrapped ones times 5 below 2^58.
func mulLimbs(a, b [5]uint64) [5]uint64 {
	s1, s2, s3, s4 := 5*b[1], 5*b[2], 5*b[3], 5*b[4]
	d := [5]uint64{
		a[0]*b[0] + a[1]*s4 + a[2]*s3 + a[3]*s2 + a[4]*s1,
		a[0]*b[1] + a[1]*b[0] + a[2]*s4 + a[3]*s3 + a[4]*s2,
		a[0]*b[2] + a[1]*b[1] + a[2]*b[0] + a[3]*s4 + a[4]*s3,
		a[0]*b[3] + a[1]*b[2] + a[2]*b[1] + a[3]*b[0] + a[4]*s4,
		a[0]*b[4] + a[1]*b[3] + a[2]*b[2] + a[3]*b[1] + a[4]*b[0],
	}
	const m = 1<<26 - 1
	for i := range 4 {
		d[i+1] += d[i] >> 26
		d[i] &= m
	}
	d[0] += 5 * (d[4] >> 26)
	d[4] &= m
	d[1] += d[0] >> 26
	d[0] &= m
	return d
}

// fromLimbs puts 26-bit limbs, each below 2^30, together in three words,
// reduced.
func fromLimbs(l [5]uint64) (uint64, uint64, uint64) {
	v0, c0 := bits.Add64(l[0], l[1]<<26, 0)
	v0, c1 := bits.Add64(v0, l[2]<<52, 0)
	v1 := c0 + c1 + l[2]>>12
	v1, c0 = bits.Add64(v1, l[3]<<14, 0)
	v1, c1 = bits.Add64(v1, l[4]<<40, 0)
	v2 := c0 + c1 + l[4]>>24
	return reduce(v0, v1, v2)
}

// block adds the block m1:m0 (plus hi · 2^128) to h and multiplies by r.
func (p *polyState) block(m0, m1, hi uint64) {
	var c uint64
	h0, c := bits.Add64(p.h0, m0, 0)
	h1, c := bits.Add64(p.h1, m1, c)
	h2 := p.h2 + c + hi
	p.h0, p.h1, p.h2 = mulR(h0, h1, h2, p.r0, p.r1)
}

// mulR returns h · r, reduced to below about 2^130 + 2^66; h2 must be
// small (below 16), as it is between blocks.
func mulR(h0, h1, h2, r0, r1 uint64) (uint64, uint64, uint64) {
	h0r0hi, h0r0lo := bits.Mul64(h0, r0)
	h1r0hi, h1r0lo := bits.Mul64(h1, r0)
	h0r1hi, h0r1lo := bits.Mul64(h0, r1)
	h1r1hi, h1r1lo := bits.Mul64(h1, r1)
	// The product t3:t2:t1:t0, with h2 · r0 and h2 · r1 below 2^64.
	t0 := h0r0lo
	t1, c := bits.Add64(h0r0hi, h1r0lo, 0)
	t2 := h1r0hi + c
	t1, c = bits.Add64(t1, h0r1lo, 0)
	t2, c = bits.Add64(t2, h0r1hi, c)
	t3 := h1r1hi + c
	t2, c = bits.Add64(t2, h1r1lo, 0)
	t3 += c
	t2, c = bits.Add64(t2, h2*r0, 0)
	t3 += c + h2*r1
	// 2^130 is 5 mod p: what lies above bit 130, times 4 and times 1, is
	// added to the low 130 bits.
	h0, h1, h2 = t0, t1, t2&3
	c0, c1 := t2&^3, t3
	h0, c = bits.Add64(h0, c0, 0)
	h1, c = bits.Add64(h1, c1, c)
	h2 += c
	c0, c1 = c0>>2|c1<<62, c1>>2
	h0, c = bits.Add64(h0, c0, 0)
	h1, c = bits.Add64(h1, c1, c)
	h2 += c
	return h0, h1, h2
}

// reduce returns h mod p, for h below 2^131.
func reduce(h0, h1, h2 uint64) (uint64, uint64, uint64) {
	// Fold what lies above bit 130 once, then subtract p if h is still
	// at least p, without branching on secret data.
	c := h2 >> 2
	h2 &= 3
	var carry uint64
	h0, carry = bits.Add64(h0, 5*c, 0)
	h1, carry = bits.Add64(h1, 0, carry)
	h2 += carry
	t0, b := bits.Sub64(h0, 0xfffffffffffffffb, 0)
	t1, b := bits.Sub64(h1, 0xffffffffffffffff, b)
	t2, b := bits.Sub64(h2, 3, b)
	keep := -b // all ones when h < p
	return h0&keep | t0&^keep, h1&keep | t1&^keep, h2&keep | t2&^keep
}

// limbs splits h, below 2^130, into five 26-bit limbs.
func limbs(h0, h1, h2 uint64) [5]uint64 {
	const m = 1<<26 - 1
	return [5]uint64{h0 & m, h0 >> 26 & m, (h0>>52 | h1<<12) & m, h1 >> 14 & m, h1>>40 | h2<<24}
}

func (p *polyState) tag() [16]byte {
	h0, h1, _ := reduce(p.h0, p.h1, p.h2)
	h0, c := bits.Add64(h0, p.s0, 0)
	h1, _ = bits.Add64(h1, p.s1, c)
	var t [16]byte
	binary.LittleEndian.PutUint64(t[:], h0)
	binary.LittleEndian.PutUint64(t[8:], h1)
	return t
}
