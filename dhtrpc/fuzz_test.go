package dhtrpc

import (
	"bytes"
	"net/netip"
	"testing"
)

func FuzzDecode(f *testing.F) {
	id := [IDSize]byte{1, 2, 3}
	addr := netip.MustParseAddrPort("10.0.0.1:49737")
	f.Add((&Request{TID: 7, To: addr, ID: &id, Token: &id, Internal: true, Command: CmdFindNode, Target: &id, Value: []byte("v")}).AppendBinary(nil))
	f.Add((&Response{TID: 9, To: addr, ID: &id, CloserNodes: []netip.AddrPort{addr, addr}, Error: 2, Value: []byte{}}).AppendBinary(nil))
	f.Add([]byte{0x03, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, p []byte) {
		m, err := Decode(p)
		if err != nil {
			return
		}
		var enc []byte
		switch m := m.(type) {
		case *Request:
			enc = m.AppendBinary(nil)
		case *Response:
			enc = m.AppendBinary(nil)
		}
		m2, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		var enc2 []byte
		switch m2 := m2.(type) {
		case *Request:
			enc2 = m2.AppendBinary(nil)
		case *Response:
			enc2 = m2.AppendBinary(nil)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatal("encoding not stable")
		}
	})
}

func TestNodeIDMatchesReference(t *testing.T) {
	// The example in the wire reference: 88.99.3.86:49737.
	id := NodeID(netip.MustParseAddrPort("88.99.3.86:49737"))
	if got := []byte{0x54, 0xd4, 0xb9, 0xc6}; !bytes.Equal(id[:4], got) {
		t.Fatalf("id %x", id)
	}
	if got := []byte{0xaf, 0x77, 0x15, 0x46}; !bytes.Equal(id[28:], got) {
		t.Fatalf("id %x", id)
	}
}
