package relay

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"testing"
)

// FuzzDecode checks that every byte sequence decodes to a message or an
// error, and that a decoded message re-encodes to bytes that decode to the
// same message.
func FuzzDecode(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for typ := MessageType(0); typ <= numTypes; typ++ {
		for range 4 {
			m := newMessage(typ)
			if m != nil {
				fill(r, reflect.ValueOf(m).Elem())
				p := m.AppendPayload(nil)
				f.Add(uint8(typ), p)
				f.Add(uint8(typ), p[:len(p)/2])
			}
		}
	}
	f.Fuzz(func(t *testing.T, typ uint8, data []byte) {
		m, err := Decode(MessageType(typ), data)
		if err != nil {
			return
		}
		enc := m.AppendPayload(nil)
		m2, err := Decode(MessageType(typ), enc)
		if err != nil {
			t.Fatalf("re-decode %v: %v", m.Type(), err)
		}
		if !bytes.Equal(m2.AppendPayload(nil), enc) {
			t.Fatalf("%v: encoding not stable", m.Type())
		}
	})
}

func FuzzAnnouncers(f *testing.F) {
	a := Announcers{Peers: []Peer{{}, {}}}
	b, _ := a.AppendBinary(nil)
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var a Announcers
		if a.UnmarshalBinary(data) != nil {
			return
		}
		enc, _ := a.AppendBinary(nil)
		var b Announcers
		if err := b.UnmarshalBinary(enc); err != nil {
			t.Fatal(err)
		}
	})
}
