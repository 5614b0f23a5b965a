package blindrelay

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// The encodings blind-relay 1.6.1 produces for these messages (its
// messages.pair and messages.unpair through compact-encoding).
var golden = []struct {
	msg interface{ Encode([]byte) []byte }
	hex string
}{
	{&Pair{IsInitiator: true, Token: sevens(), ID: 300}, "01" + sevensHex + "fd2c0100"},
	{&Pair{Token: sevens(), ID: 5}, "00" + sevensHex + "0500"},
	{&Unpair{Token: sevens()}, "00" + sevensHex},
}

const sevensHex = "0707070707070707070707070707070707070707070707070707070707070707"

func sevens() (t [32]byte) {
	for i := range t {
		t[i] = 7
	}
	return t
}

func TestEncodingMatchesJS(t *testing.T) {
	for _, g := range golden {
		if got := hex.EncodeToString(g.msg.Encode(nil)); got != g.hex {
			t.Errorf("%T: %s, want %s", g.msg, got, g.hex)
		}
		want, _ := hex.DecodeString(g.hex)
		switch m := g.msg.(type) {
		case *Pair:
			var d Pair
			if err := d.Decode(want); err != nil || d != *m {
				t.Errorf("decode pair: %+v %v", d, err)
			}
		case *Unpair:
			var d Unpair
			if err := d.Decode(want); err != nil || d != *m {
				t.Errorf("decode unpair: %+v %v", d, err)
			}
		}
	}
}

// FuzzDecode: the decoders take any bytes, and what they accept encodes
// to bytes that decode to the same message.
func FuzzDecode(f *testing.F) {
	for _, g := range golden {
		b, _ := hex.DecodeString(g.hex)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		var m Pair
		if m.Decode(p) == nil {
			var again Pair
			if err := again.Decode(m.Encode(nil)); err != nil || again != m {
				t.Fatalf("pair %+v re-decoded as %+v, %v", m, again, err)
			}
		}
		var u Unpair
		if u.Decode(p) == nil {
			if !bytes.Equal(u.Encode(nil)[1:], u.Token[:]) {
				t.Fatal("unpair token lost")
			}
		}
	})
}
