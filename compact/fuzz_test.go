package compact

import (
	"testing"
)

// FuzzReader drives a Reader through a sequence of field reads chosen by
// the input itself; no input may panic, and a clean uint read must
// re-encode to a value that reads back the same.
func FuzzReader(f *testing.F) {
	f.Add([]byte{0, 0xfd, 0x01, 0x02})
	f.Add(AppendIPv4Array(AppendString([]byte{9, 6}, "hello"), nil))
	f.Add([]byte{0xff, 1, 2, 3, 4, 5, 6, 7, 8, 0xfe, 1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(data)
		for r.Len() > 0 && r.Err() == nil {
			switch r.Uint8() % 12 {
			case 0:
				v := r.Uint()
				if r.Err() == nil {
					if got := NewReader(AppendUint(nil, v)).Uint(); got != v {
						t.Fatalf("uint %d re-read as %d", v, got)
					}
				}
			case 1:
				r.Int()
			case 2:
				r.Buffer()
			case 3:
				_ = r.String()
			case 4:
				r.IPv4()
			case 5:
				r.IPv6()
			case 6:
				r.IPv4Array()
			case 7:
				r.ArrayLen(1)
			case 8:
				r.Fixed32()
			case 9:
				r.Fixed64()
			case 10:
				r.Uint24()
			case 11:
				r.Fixed(int(r.Uint8()))
			}
		}
	})
}
