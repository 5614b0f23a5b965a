package bytequeue

import (
	"bytes"
	"math/rand/v2"
	"runtime"
	"testing"
)

// Bytes pushed in packets of any size come out in order through reads of
// any size, across block boundaries, Len counts what is left throughout,
// and an emptied queue holds no block.
func TestQueueKeepsOrderAcrossBlocks(t *testing.T) {
	var bp Pool
	var q Queue
	rng := rand.New(rand.NewPCG(1, 2))
	var in, out bytes.Buffer
	buf := make([]byte, 3*BlockSize)
	for round := 0; round < 200; round++ {
		for range rng.IntN(100) {
			p := make([]byte, rng.IntN(3000))
			for i := range p {
				p[i] = byte(rng.Uint32())
			}
			in.Write(p)
			q.Push(&bp, p)
		}
		for !q.Empty() && rng.IntN(4) > 0 {
			n := q.Read(&bp, buf[:rng.IntN(len(buf))+1])
			out.Write(buf[:n])
		}
		if q.Len() != in.Len()-out.Len() {
			t.Fatalf("Len %d with %d bytes left", q.Len(), in.Len()-out.Len())
		}
	}
	for !q.Empty() {
		n := q.Read(&bp, buf)
		out.Write(buf[:n])
	}
	if !bytes.Equal(in.Bytes(), out.Bytes()) {
		t.Fatalf("read %d bytes, not the %d pushed in order", out.Len(), in.Len())
	}
	if len(q.blocks) != 0 {
		t.Fatalf("empty queue holds %d blocks", len(q.blocks))
	}
}

// TestReleaseEmptiesAndReturns: a released queue is empty, gives its
// blocks to the pool, and takes new bytes as a fresh one.
func TestReleaseEmptiesAndReturns(t *testing.T) {
	var bp Pool
	var q Queue
	q.Push(&bp, make([]byte, 3*BlockSize+10))
	q.Read(&bp, make([]byte, 5))
	blocks := q.blocks
	q.Release(&bp)
	if !q.Empty() || q.off != 0 || q.Len() != 0 {
		t.Fatalf("released queue: empty %v, offset %d, Len %d", q.Empty(), q.off, q.Len())
	}
	for i, b := range blocks[:cap(blocks)] {
		if b != nil {
			t.Fatalf("the queue still points at block %d", i)
		}
	}
	q.Push(&bp, []byte("abc"))
	buf := make([]byte, 8)
	if n := q.Read(&bp, buf); string(buf[:n]) != "abc" {
		t.Fatalf("read %q after release, want abc", buf[:n])
	}
}

// TestPoolKeepsBlocksThroughCollections: blocks given back are lent again
// after the collector ran, and no more than keepBlocks are kept.
func TestPoolKeepsBlocksThroughCollections(t *testing.T) {
	var bp Pool
	var lent [][]byte
	for range keepBlocks + 8 {
		lent = append(lent, bp.get())
	}
	for _, b := range lent {
		bp.put(b)
	}
	if len(bp.free) != keepBlocks {
		t.Fatalf("the pool keeps %d blocks, want %d", len(bp.free), keepBlocks)
	}
	runtime.GC()
	runtime.GC()
	kept := map[*byte]bool{}
	for _, b := range lent {
		kept[&b[:1][0]] = true
	}
	for range keepBlocks {
		if b := bp.get(); !kept[&b[:1][0]] {
			t.Fatal("a block was made anew after two collections while the pool kept some")
		}
	}
}
