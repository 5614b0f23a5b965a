//go:build amd64 && !purego

#include "textflag.h"

// Sixteen ChaCha20 blocks at once: register Zi holds state word i of all
// sixteen, one block per 32-bit lane, so the rounds are plain lane-wise
// adds, XORs and rotates (AVX-512F has the rotate).

// lanes are the block counter's offsets: lane i computes block counter+i.
DATA lanes<>+0(SB)/4, $0
DATA lanes<>+4(SB)/4, $1
DATA lanes<>+8(SB)/4, $2
DATA lanes<>+12(SB)/4, $3
DATA lanes<>+16(SB)/4, $4
DATA lanes<>+20(SB)/4, $5
DATA lanes<>+24(SB)/4, $6
DATA lanes<>+28(SB)/4, $7
DATA lanes<>+32(SB)/4, $8
DATA lanes<>+36(SB)/4, $9
DATA lanes<>+40(SB)/4, $10
DATA lanes<>+44(SB)/4, $11
DATA lanes<>+48(SB)/4, $12
DATA lanes<>+52(SB)/4, $13
DATA lanes<>+56(SB)/4, $14
DATA lanes<>+60(SB)/4, $15
GLOBL lanes<>(SB), RODATA|NOPTR, $64

// STEP is one line of four quarter rounds side by side:
// a += b; d ^= a; d <<<= r.
#define STEP(a0, b0, d0, a1, b1, d1, a2, b2, d2, a3, b3, d3, r) \
	VPADDD b0, a0, a0; VPADDD b1, a1, a1; VPADDD b2, a2, a2; VPADDD b3, a3, a3; \
	VPXORD a0, d0, d0; VPXORD a1, d1, d1; VPXORD a2, d2, d2; VPXORD a3, d3, d3; \
	VPROLD r, d0, d0; VPROLD r, d1, d1; VPROLD r, d2, d2; VPROLD r, d3, d3

// QUARTERS is four quarter rounds, on (a0, b0, c0, d0) to (a3, b3, c3, d3).
#define QUARTERS(a0, b0, c0, d0, a1, b1, c1, d1, a2, b2, c2, d2, a3, b3, c3, d3) \
	STEP(a0, b0, d0, a1, b1, d1, a2, b2, d2, a3, b3, d3, $16); \
	STEP(c0, d0, b0, c1, d1, b1, c2, d2, b2, c3, d3, b3, $12); \
	STEP(a0, b0, d0, a1, b1, d1, a2, b2, d2, a3, b3, d3, $8); \
	STEP(c0, d0, b0, c1, d1, b1, c2, d2, b2, c3, d3, b3, $7)

// WORDS transposes 32-bit words within each 128-bit lane: afterwards
// register k of a0..a3 holds, in lane L, word j of block 4L+k from aj.
#define WORDS(a0, a1, a2, a3) \
	VPUNPCKLDQ a1, a0, Z16; VPUNPCKHDQ a1, a0, Z17; \
	VPUNPCKLDQ a3, a2, Z18; VPUNPCKHDQ a3, a2, Z19; \
	VPUNPCKLQDQ Z18, Z16, a0; VPUNPCKHQDQ Z18, Z16, a1; \
	VPUNPCKLQDQ Z19, Z17, a2; VPUNPCKHQDQ Z19, Z17, a3

// BLOCKS gathers lane L of a, b, c and d, the four 16-byte quarters of
// block 4L+k, and XORs each block into place: block i is at 64*i.
#define BLOCKS(a, b, c, d, k) \
	VSHUFI32X4 $0x44, b, a, Z16; VSHUFI32X4 $0xEE, b, a, Z17; \
	VSHUFI32X4 $0x44, d, c, Z18; VSHUFI32X4 $0xEE, d, c, Z19; \
	VSHUFI32X4 $0x88, Z18, Z16, Z20; VSHUFI32X4 $0xDD, Z18, Z16, Z21; \
	VSHUFI32X4 $0x88, Z19, Z17, Z22; VSHUFI32X4 $0xDD, Z19, Z17, Z23; \
	VPXORD (64*k)(SI), Z20, Z20; VMOVDQU32 Z20, (64*k)(DX); \
	VPXORD (64*(4+k))(SI), Z21, Z21; VMOVDQU32 Z21, (64*(4+k))(DX); \
	VPXORD (64*(8+k))(SI), Z22, Z22; VMOVDQU32 Z22, (64*(8+k))(DX); \
	VPXORD (64*(12+k))(SI), Z23, Z23; VMOVDQU32 Z23, (64*(12+k))(DX)

// func xorBlocks16(dst, src *byte, n int, state *[16]uint32)
TEXT ·xorBlocks16(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DX
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), BX
	MOVQ state+24(FP), DI

chunk:
	// Z16-Z31 keep the initial state for the final addition.
	VPBROADCASTD 0(DI), Z16
	VPBROADCASTD 4(DI), Z17
	VPBROADCASTD 8(DI), Z18
	VPBROADCASTD 12(DI), Z19
	VPBROADCASTD 16(DI), Z20
	VPBROADCASTD 20(DI), Z21
	VPBROADCASTD 24(DI), Z22
	VPBROADCASTD 28(DI), Z23
	VPBROADCASTD 32(DI), Z24
	VPBROADCASTD 36(DI), Z25
	VPBROADCASTD 40(DI), Z26
	VPBROADCASTD 44(DI), Z27
	VPBROADCASTD 48(DI), Z28
	VPBROADCASTD 52(DI), Z29
	VPBROADCASTD 56(DI), Z30
	VPBROADCASTD 60(DI), Z31
	VPADDD lanes<>(SB), Z28, Z28
	VMOVDQA64 Z16, Z0
	VMOVDQA64 Z17, Z1
	VMOVDQA64 Z18, Z2
	VMOVDQA64 Z19, Z3
	VMOVDQA64 Z20, Z4
	VMOVDQA64 Z21, Z5
	VMOVDQA64 Z22, Z6
	VMOVDQA64 Z23, Z7
	VMOVDQA64 Z24, Z8
	VMOVDQA64 Z25, Z9
	VMOVDQA64 Z26, Z10
	VMOVDQA64 Z27, Z11
	VMOVDQA64 Z28, Z12
	VMOVDQA64 Z29, Z13
	VMOVDQA64 Z30, Z14
	VMOVDQA64 Z31, Z15
	MOVQ $10, CX

double:
	QUARTERS(Z0, Z4, Z8, Z12, Z1, Z5, Z9, Z13, Z2, Z6, Z10, Z14, Z3, Z7, Z11, Z15)
	QUARTERS(Z0, Z5, Z10, Z15, Z1, Z6, Z11, Z12, Z2, Z7, Z8, Z13, Z3, Z4, Z9, Z14)
	DECQ CX
	JNZ  double

	VPADDD Z16, Z0, Z0
	VPADDD Z17, Z1, Z1
	VPADDD Z18, Z2, Z2
	VPADDD Z19, Z3, Z3
	VPADDD Z20, Z4, Z4
	VPADDD Z21, Z5, Z5
	VPADDD Z22, Z6, Z6
	VPADDD Z23, Z7, Z7
	VPADDD Z24, Z8, Z8
	VPADDD Z25, Z9, Z9
	VPADDD Z26, Z10, Z10
	VPADDD Z27, Z11, Z11
	VPADDD Z28, Z12, Z12
	VPADDD Z29, Z13, Z13
	VPADDD Z30, Z14, Z14
	VPADDD Z31, Z15, Z15

	WORDS(Z0, Z1, Z2, Z3)
	WORDS(Z4, Z5, Z6, Z7)
	WORDS(Z8, Z9, Z10, Z11)
	WORDS(Z12, Z13, Z14, Z15)
	BLOCKS(Z0, Z4, Z8, Z12, 0)
	BLOCKS(Z1, Z5, Z9, Z13, 1)
	BLOCKS(Z2, Z6, Z10, Z14, 2)
	BLOCKS(Z3, Z7, Z11, Z15, 3)

	ADDL $16, 48(DI)
	ADDQ $1024, SI
	ADDQ $1024, DX
	DECQ BX
	JNZ  chunk
	VZEROUPPER
	RET
