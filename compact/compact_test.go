package compact

import "testing"

// TestUintHeadSize: a compact uint's first byte tells its size, at every
// form's edges.
func TestUintHeadSize(t *testing.T) {
	for _, v := range []uint64{0, 0xfc, 0xfd, 0xffff, 0x10000, 0xffffffff, 0x100000000, 1<<64 - 1} {
		b := AppendUint(nil, v)
		if got := UintHeadSize(b[0]); got != len(b) || got != UintSize(v) {
			t.Fatalf("%#x: head says %d bytes, encoded in %d", v, got, len(b))
		}
	}
}
