//go:build amd64 && !purego

#include "textflag.h"

// Poly1305 over eight blocks at once: register Z0-Z4 holds limb 0-4 (26
// bits each) of eight accumulators, one per 64-bit lane, and VPMULUDQ
// multiplies the low 32 bits of each lane into 64.

DATA mask26<>+0(SB)/8, $0x3ffffff
GLOBL mask26<>(SB), RODATA|NOPTR, $8
DATA hibit<>+0(SB)/8, $0x1000000
GLOBL hibit<>(SB), RODATA|NOPTR, $8

// ADDCHUNK adds the eight blocks at SI to h: in-lane unpacking of the two
// 64-byte halves gives each lane one block's low and high word.
#define ADDCHUNK \
	VMOVDQU64 0(SI), Z28; VMOVDQU64 64(SI), Z29; \
	VPUNPCKLQDQ Z29, Z28, Z5; VPUNPCKHQDQ Z29, Z28, Z6; \
	VPANDQ Z24, Z5, Z7; VPADDQ Z7, Z0, Z0; \
	VPSRLQ $26, Z5, Z7; VPANDQ Z24, Z7, Z7; VPADDQ Z7, Z1, Z1; \
	VPSRLQ $52, Z5, Z7; VPSLLQ $12, Z6, Z8; VPORQ Z8, Z7, Z7; VPANDQ Z24, Z7, Z7; VPADDQ Z7, Z2, Z2; \
	VPSRLQ $14, Z6, Z7; VPANDQ Z24, Z7, Z7; VPADDQ Z7, Z3, Z3; \
	VPSRLQ $40, Z6, Z7; VPORQ Z25, Z7, Z7; VPADDQ Z7, Z4, Z4

// MAC accumulates h * x into d.
#define MAC(x, h, d) VPMULUDQ x, h, Z30; VPADDQ Z30, d, d

// MUL sets d (Z10-Z14) to h · r, given r's limbs r0-r4 and s1-s4 = 5 · r1-r4
// (2^130 is 5 mod p).
#define MUL(r0, r1, r2, r3, r4, s1, s2, s3, s4) \
	VPMULUDQ r0, Z0, Z10; MAC(s4, Z1, Z10); MAC(s3, Z2, Z10); MAC(s2, Z3, Z10); MAC(s1, Z4, Z10); \
	VPMULUDQ r1, Z0, Z11; MAC(r0, Z1, Z11); MAC(s4, Z2, Z11); MAC(s3, Z3, Z11); MAC(s2, Z4, Z11); \
	VPMULUDQ r2, Z0, Z12; MAC(r1, Z1, Z12); MAC(r0, Z2, Z12); MAC(s4, Z3, Z12); MAC(s3, Z4, Z12); \
	VPMULUDQ r3, Z0, Z13; MAC(r2, Z1, Z13); MAC(r1, Z2, Z13); MAC(r0, Z3, Z13); MAC(s4, Z4, Z13); \
	VPMULUDQ r4, Z0, Z14; MAC(r3, Z1, Z14); MAC(r2, Z2, Z14); MAC(r1, Z3, Z14); MAC(r0, Z4, Z14)

// CARRY brings d's limbs back to about 26 bits into h: what leaves limb 4
// comes back into limb 0 times 5.
#define CARRY \
	VPSRLQ $26, Z10, Z30; VPANDQ Z24, Z10, Z10; VPADDQ Z30, Z11, Z11; \
	VPSRLQ $26, Z11, Z30; VPANDQ Z24, Z11, Z11; VPADDQ Z30, Z12, Z12; \
	VPSRLQ $26, Z12, Z30; VPANDQ Z24, Z12, Z2; VPADDQ Z30, Z13, Z13; \
	VPSRLQ $26, Z13, Z30; VPANDQ Z24, Z13, Z3; VPADDQ Z30, Z14, Z14; \
	VPSRLQ $26, Z14, Z30; VPANDQ Z24, Z14, Z4; \
	VPSLLQ $2, Z30, Z31; VPADDQ Z31, Z30, Z30; VPADDQ Z30, Z10, Z10; \
	VPSRLQ $26, Z10, Z30; VPANDQ Z24, Z10, Z0; VPADDQ Z30, Z11, Z1

// func polyBlocks8(msg *byte, n int, tab *polyTable, out *[5][8]uint64)
TEXT ·polyBlocks8(SB), NOSPLIT, $0-32
	MOVQ msg+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ tab+16(FP), DX
	MOVQ out+24(FP), DI

	VPBROADCASTQ mask26<>(SB), Z24
	VPBROADCASTQ hibit<>(SB), Z25
	VMOVDQU64 0(DX), Z15
	VMOVDQU64 64(DX), Z16
	VMOVDQU64 128(DX), Z17
	VMOVDQU64 192(DX), Z18
	VMOVDQU64 256(DX), Z19
	VMOVDQU64 320(DX), Z20
	VMOVDQU64 384(DX), Z21
	VMOVDQU64 448(DX), Z22
	VMOVDQU64 512(DX), Z23
	VPXORQ Z0, Z0, Z0
	VPXORQ Z1, Z1, Z1
	VPXORQ Z2, Z2, Z2
	VPXORQ Z3, Z3, Z3
	VPXORQ Z4, Z4, Z4
	DECQ CX
	JZ   last

chunk:
	ADDCHUNK
	MUL(Z15, Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23)
	CARRY
	ADDQ $128, SI
	DECQ CX
	JNZ  chunk

last:
	ADDCHUNK
	MUL(576(DX), 640(DX), 704(DX), 768(DX), 832(DX), 896(DX), 960(DX), 1024(DX), 1088(DX))
	CARRY
	VMOVDQU64 Z0, 0(DI)
	VMOVDQU64 Z1, 64(DI)
	VMOVDQU64 Z2, 128(DI)
	VMOVDQU64 Z3, 192(DI)
	VMOVDQU64 Z4, 256(DI)
	VZEROUPPER
	RET

// The same over four blocks at once with AVX2, which has sixteen vector
// registers: Y0-Y4 hold h, Y10-Y14 the product, Y15 the limb mask, and
// the multipliers stay in the table, read as memory operands.

DATA hibit4<>+0(SB)/8, $0x1000000
DATA hibit4<>+8(SB)/8, $0x1000000
DATA hibit4<>+16(SB)/8, $0x1000000
DATA hibit4<>+24(SB)/8, $0x1000000
GLOBL hibit4<>(SB), RODATA|NOPTR, $32

// ADDCHUNK4 adds the four blocks at SI to h: in-lane unpacking of the two
// 32-byte halves gives each lane one block's low and high word.
#define ADDCHUNK4 \
	VMOVDQU 0(SI), Y5; VMOVDQU 32(SI), Y6; \
	VPUNPCKLQDQ Y6, Y5, Y7; VPUNPCKHQDQ Y6, Y5, Y8; \
	VPAND Y15, Y7, Y5; VPADDQ Y5, Y0, Y0; \
	VPSRLQ $26, Y7, Y5; VPAND Y15, Y5, Y5; VPADDQ Y5, Y1, Y1; \
	VPSRLQ $52, Y7, Y5; VPSLLQ $12, Y8, Y6; VPOR Y6, Y5, Y5; VPAND Y15, Y5, Y5; VPADDQ Y5, Y2, Y2; \
	VPSRLQ $14, Y8, Y5; VPAND Y15, Y5, Y5; VPADDQ Y5, Y3, Y3; \
	VPSRLQ $40, Y8, Y5; VPOR hibit4<>(SB), Y5, Y5; VPADDQ Y5, Y4, Y4

#define MAC4(x, h, d) VPMULUDQ x, h, Y9; VPADDQ Y9, d, d

#define MUL4(r0, r1, r2, r3, r4, s1, s2, s3, s4) \
	VPMULUDQ r0, Y0, Y10; MAC4(s4, Y1, Y10); MAC4(s3, Y2, Y10); MAC4(s2, Y3, Y10); MAC4(s1, Y4, Y10); \
	VPMULUDQ r1, Y0, Y11; MAC4(r0, Y1, Y11); MAC4(s4, Y2, Y11); MAC4(s3, Y3, Y11); MAC4(s2, Y4, Y11); \
	VPMULUDQ r2, Y0, Y12; MAC4(r1, Y1, Y12); MAC4(r0, Y2, Y12); MAC4(s4, Y3, Y12); MAC4(s3, Y4, Y12); \
	VPMULUDQ r3, Y0, Y13; MAC4(r2, Y1, Y13); MAC4(r1, Y2, Y13); MAC4(r0, Y3, Y13); MAC4(s4, Y4, Y13); \
	VPMULUDQ r4, Y0, Y14; MAC4(r3, Y1, Y14); MAC4(r2, Y2, Y14); MAC4(r1, Y3, Y14); MAC4(r0, Y4, Y14)

#define CARRY4 \
	VPSRLQ $26, Y10, Y5; VPAND Y15, Y10, Y10; VPADDQ Y5, Y11, Y11; \
	VPSRLQ $26, Y11, Y5; VPAND Y15, Y11, Y11; VPADDQ Y5, Y12, Y12; \
	VPSRLQ $26, Y12, Y5; VPAND Y15, Y12, Y2; VPADDQ Y5, Y13, Y13; \
	VPSRLQ $26, Y13, Y5; VPAND Y15, Y13, Y3; VPADDQ Y5, Y14, Y14; \
	VPSRLQ $26, Y14, Y5; VPAND Y15, Y14, Y4; \
	VPSLLQ $2, Y5, Y6; VPADDQ Y6, Y5, Y5; VPADDQ Y5, Y10, Y10; \
	VPSRLQ $26, Y10, Y5; VPAND Y15, Y10, Y0; VPADDQ Y5, Y11, Y1

// func polyBlocks4(msg *byte, n int, tab *polyTable4, out *[5][4]uint64)
TEXT ·polyBlocks4(SB), NOSPLIT, $0-32
	MOVQ msg+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ tab+16(FP), DX
	MOVQ out+24(FP), DI

	VPBROADCASTQ mask26<>(SB), Y15
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	VPXOR Y4, Y4, Y4
	DECQ CX
	JZ   last4

chunk4:
	ADDCHUNK4
	MUL4(0(DX), 32(DX), 64(DX), 96(DX), 128(DX), 160(DX), 192(DX), 224(DX), 256(DX))
	CARRY4
	ADDQ $64, SI
	DECQ CX
	JNZ  chunk4

last4:
	ADDCHUNK4
	MUL4(288(DX), 320(DX), 352(DX), 384(DX), 416(DX), 448(DX), 480(DX), 512(DX), 544(DX))
	CARRY4
	VMOVDQU Y0, 0(DI)
	VMOVDQU Y1, 32(DI)
	VMOVDQU Y2, 64(DI)
	VMOVDQU Y3, 96(DI)
	VMOVDQU Y4, 128(DI)
	VZEROUPPER
	RET
