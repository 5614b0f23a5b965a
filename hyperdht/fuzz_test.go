package hyperdht

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// FuzzDecode runs every codec's decoder on arbitrary bytes (the first byte
// picks the codec); a decoded value must re-encode to bytes that decode to
// the same encoding.
func FuzzDecode(f *testing.F) {
	names := make([]string, 0, len(codecs))
	for n := range codecs {
		names = append(names, n)
	}
	slices.Sort(names)
	r := rand.New(rand.NewPCG(1, 1))
	for i, n := range names {
		m := codecs[n]()
		fill(r, reflect.ValueOf(m).Elem())
		f.Add(append([]byte{byte(i)}, m.Encode(nil)...))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		if len(p) == 0 {
			return
		}
		mk := codecs[names[int(p[0])%len(names)]]
		m := mk()
		if m.Decode(p[1:]) != nil {
			return
		}
		enc := m.Encode(nil)
		m2 := mk()
		if err := m2.Decode(enc); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !bytes.Equal(m2.Encode(nil), enc) {
			t.Fatal("encoding not stable")
		}
	})
}
