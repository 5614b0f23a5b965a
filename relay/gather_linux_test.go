package relay

import "testing"

// TestGatherWriterLetsThePartsGo: once a write returns, the writer holds
// no pointer into the parts, which are the caller's (pooled buffers, a
// message the collector may free).
func TestGatherWriterLetsThePartsGo(t *testing.T) {
	a, b := tcpPair(t)
	go func() {
		buf := make([]byte, 1<<20)
		for {
			if _, err := b.Read(buf); err != nil {
				return
			}
		}
	}()
	g := newGatherWriter(a)
	for range 3 {
		if err := g.write([][]byte{make([]byte, 10), make([]byte, 4<<20), make([]byte, 3)}); err != nil {
			t.Fatal(err)
		}
	}
	for i, v := range g.iovs[:cap(g.iovs)] {
		if v.Base != nil {
			t.Fatalf("iovec %d still points at a part", i)
		}
	}
}
