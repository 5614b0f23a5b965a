package relay

import (
	"bytes"
	"errors"
	"runtime"
	"testing"

	"github.com/dhtrelay/dht-relay/compact"
)

func TestBuffersKeepEachBuffer(t *testing.T) {
	want := [][]byte{[]byte("a"), {}, bytes.Repeat([]byte{7}, 300), []byte("last")}
	m := &Data{Alias: 9, Buffers: MakeBuffers(want...)}
	got, err := Decode(TypeData, m.AppendPayload(nil))
	if err != nil {
		t.Fatal(err)
	}
	b := got.(*Data).Buffers
	if b.Count() != len(want) || b.Bytes() != 305 {
		t.Fatalf("count %d bytes %d", b.Count(), b.Bytes())
	}
	i := 0
	for p := range b.All() {
		if !bytes.Equal(p, want[i]) {
			t.Fatalf("buffer %d: %q", i, p)
		}
		i++
	}
	if p, ok := b.Next(); !ok || string(p) != "a" || b.Count() != 3 {
		t.Fatalf("Next: %q %v, %d left", p, ok, b.Count())
	}
}

// TestDataOfEmptyBuffersCostsItsBytes: the most buffers a Data message may
// declare, all empty, are held in the bytes that carry them; a slice
// header each would be 24 times those bytes.
func TestDataOfEmptyBuffersCostsItsBytes(t *testing.T) {
	payload := compact.AppendUint(compact.AppendUint32(nil, 1), compact.MaxArrayLen)
	payload = append(payload, make([]byte, compact.MaxArrayLen)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	m, err := Decode(TypeData, payload)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if n := m.(*Data).Buffers.Count(); n != compact.MaxArrayLen {
		t.Fatalf("%d buffers", n)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<10 {
		t.Fatalf("decoding %d bytes allocated %d", len(payload), grew)
	}
}

func TestDataCutShortFails(t *testing.T) {
	full := (&Data{Alias: 1, Buffers: MakeBuffers([]byte("abc"), []byte("defg"))}).AppendPayload(nil)
	for n := range len(full) - 1 {
		_, err := Decode(TypeData, full[:n])
		if err == nil {
			t.Errorf("%d of %d bytes decoded", n, len(full))
		} else if !errors.Is(err, compact.ErrOutOfBounds) && !errors.Is(err, compact.ErrArrayTooBig) {
			t.Errorf("%d bytes: %v", n, err)
		}
	}
}
