package udx

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// Bytes pushed in packets of any size come out in order through reads of
// any size, across block boundaries, and an emptied queue holds no block.
func TestRecvQueueKeepsOrderAcrossBlocks(t *testing.T) {
	var bp blockPool
	var q recvQueue
	rng := rand.New(rand.NewPCG(1, 2))
	var in, out bytes.Buffer
	buf := make([]byte, 3*recvBlock)
	for round := 0; round < 200; round++ {
		for range rng.IntN(100) {
			p := make([]byte, rng.IntN(2*MaxPayload))
			for i := range p {
				p[i] = byte(rng.Uint32())
			}
			in.Write(p)
			q.push(&bp, p)
		}
		for !q.empty() && rng.IntN(4) > 0 {
			n := q.read(&bp, buf[:rng.IntN(len(buf))+1])
			out.Write(buf[:n])
		}
	}
	for !q.empty() {
		n := q.read(&bp, buf)
		out.Write(buf[:n])
	}
	if !bytes.Equal(in.Bytes(), out.Bytes()) {
		t.Fatalf("read %d bytes, not the %d pushed in order", out.Len(), in.Len())
	}
	if len(q.blocks) != 0 {
		t.Fatalf("empty queue holds %d blocks", len(q.blocks))
	}
}
