package relay

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/dhtrelay/dht-relay/internal/interop"
)

type vector struct {
	Type  MessageType    `json:"type"`
	Name  string         `json:"name"`
	Value map[string]any `json:"value"`
	Hex   string         `json:"hex"`
}

// relayView renders a Go message the way test/interop/lib/json.js renders
// a JS one: addresses with their family, a node's id (null when absent),
// a Data message's buffers as "data", and an Address field spread into its
// message, as the JS codecs do.
var relayView = interop.JSView{
	NilBytes: "",
	Value: func(v reflect.Value) (any, bool) {
		switch x := v.Interface().(type) {
		case netip.AddrPort:
			return addressView(x), true
		case Node:
			out := addressView(x.Address)
			out["id"] = nil
			if x.ID != nil {
				out["id"] = hex.EncodeToString(x.ID)
			}
			return out, true
		}
		return nil, false
	},
	Field: func(f reflect.StructField, v reflect.Value, out map[string]any) bool {
		switch x := v.Interface().(type) {
		case Buffers:
			ps := []any{}
			for p := range x.All() {
				ps = append(ps, hex.EncodeToString(p))
			}
			out["data"] = ps
			return true
		case netip.AddrPort:
			if f.Name == "Address" {
				maps.Copy(out, addressView(x))
				return true
			}
		}
		return false
	},
}

func addressView(a netip.AddrPort) map[string]any {
	return map[string]any{"host": a.Addr().String(), "port": float64(a.Port()), "family": float64(4)}
}

// isAbsent reports whether a Go value is how a field the JS side decodes as
// null looks in Go: its zero value.
func isAbsent(v any) bool {
	switch x := v.(type) {
	case string:
		return strings.Trim(x, "0") == ""
	case float64:
		return x == 0
	case bool:
		return !x
	case nil:
		return true
	}
	return false
}

func compareView(t *testing.T, label string, js map[string]any, m Message) {
	t.Helper()
	g := relayView.Of(reflect.ValueOf(m).Elem()).(map[string]any)
	for k, jv := range js {
		gv, ok := g[k]
		if jv == nil {
			if ok && !isAbsent(gv) {
				t.Errorf("%s: %s is null in JS, %v in Go", label, k, gv)
			}
			continue
		}
		if !ok {
			t.Errorf("%s: Go has no field for JS %s", label, k)
			continue
		}
		if !reflect.DeepEqual(normalize(jv), normalize(gv)) {
			t.Errorf("%s: %s: JS %v, Go %v", label, k, jv, gv)
		}
	}
	for k := range g {
		if _, ok := js[k]; !ok {
			t.Errorf("%s: Go field %s unknown to JS", label, k)
		}
	}
}

// normalize passes both sides through JSON so their types agree.
func normalize(v any) any {
	b, _ := json.Marshal(v)
	var out any
	json.Unmarshal(b, &out)
	return out
}

// TestVectorsFromJS decodes every message variant the JS codecs encode,
// checks each field, and re-encodes to the same bytes.
func TestVectorsFromJS(t *testing.T) {
	var vs []vector
	if err := json.Unmarshal(interop.Run(t, nil, "relay-vectors.js", "encode"), &vs); err != nil {
		t.Fatal(err)
	}
	seen := map[MessageType]bool{}
	for i, v := range vs {
		label := fmt.Sprintf("#%d %s", i, v.Name)
		if v.Type.String() != v.Name {
			t.Fatalf("%s: type %d is %v in Go", label, v.Type, v.Type)
		}
		raw, _ := hex.DecodeString(v.Hex)
		m, err := Decode(v.Type, raw)
		if err != nil {
			t.Errorf("%s: %v", label, err)
			continue
		}
		seen[v.Type] = true
		compareView(t, label, v.Value, m)
		if got := m.AppendPayload(nil); !bytes.Equal(got, raw) {
			t.Errorf("%s: re-encoded\n%x\nwant\n%x", label, got, raw)
		}
	}
	if len(seen) != int(numTypes) {
		t.Fatalf("vectors cover %d of %d types", len(seen), numTypes)
	}
}

// randomMessage fills every field of a message of type t at random, then
// drops what its flags make absent by decoding its own encoding.
func randomMessage(t *testing.T, r *rand.Rand, typ MessageType) Message {
	m := newMessage(typ)
	fill(r, reflect.ValueOf(m).Elem())
	out, err := Decode(typ, m.AppendPayload(nil))
	if err != nil {
		t.Fatalf("%v: decode own encoding: %v", typ, err)
	}
	return out
}

var sampleErrors = []string{"", "PEER_NOT_FOUND: Peer not found", "ÆØÅ ∑ 😀", strings.Repeat("x", 300)}

func fill(r *rand.Rand, v reflect.Value) {
	switch x := v.Addr().Interface().(type) {
	case *netip.AddrPort:
		*x = netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())}), uint16(r.Uint32()))
		return
	case *[]byte:
		n := []int{0, 1, 32, 252, 253, 1000}[r.IntN(6)]
		*x = make([]byte, n)
		for i := range *x {
			(*x)[i] = byte(r.Uint32())
		}
		return
	case *string:
		*x = sampleErrors[r.IntN(len(sampleErrors))]
		return
	case *Buffers:
		var ps [][]byte
		fill(r, reflect.ValueOf(&ps).Elem())
		*x = MakeBuffers(ps...)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			fill(r, v.Field(i))
		}
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			v.Index(i).SetUint(uint64(r.Uint32() & 0xff))
		}
	case reflect.Slice:
		n := r.IntN(4)
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := 0; i < n; i++ {
			fill(r, s.Index(i))
		}
		v.Set(s)
	case reflect.Bool:
		v.SetBool(r.IntN(2) == 1)
	case reflect.Uint32:
		v.SetUint(uint64([]uint32{0, 1, r.Uint32(), 0xffffffff}[r.IntN(4)]))
	default:
		panic("fill: unhandled " + v.Type().String())
	}
}

// TestVectorsToJS encodes random messages of every type and variant in Go
// and has the JS codecs decode them to the same fields and re-encode them to
// the same bytes.
func TestVectorsToJS(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	type in struct {
		Type MessageType `json:"type"`
		Hex  string      `json:"hex"`
	}
	var msgs []Message
	var req []in
	for typ := MessageType(0); typ < numTypes; typ++ {
		for range 64 {
			m := randomMessage(t, r, typ)
			msgs = append(msgs, m)
			req = append(req, in{typ, hex.EncodeToString(m.AppendPayload(nil))})
		}
	}
	body, _ := json.Marshal(req)
	var vs []vector
	if err := json.Unmarshal(interop.Run(t, body, "relay-vectors.js", "decode"), &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) != len(msgs) {
		t.Fatalf("JS decoded %d of %d", len(vs), len(msgs))
	}
	for i, v := range vs {
		label := fmt.Sprintf("#%d %v", i, msgs[i].Type())
		compareView(t, label, v.Value, msgs[i])
		if v.Hex != req[i].Hex {
			t.Errorf("%s: JS re-encoded\n%s\nwant\n%s", label, v.Hex, req[i].Hex)
		}
	}
}

func TestAnnouncersFromJS(t *testing.T) {
	var vs []struct {
		Hex   string         `json:"hex"`
		Value map[string]any `json:"value"`
	}
	if err := json.Unmarshal(interop.Run(t, nil, "relay-vectors.js", "announcers"), &vs); err != nil {
		t.Fatal(err)
	}
	for i, v := range vs {
		raw, _ := hex.DecodeString(v.Hex)
		var a Announcers
		if err := a.UnmarshalBinary(raw); err != nil {
			t.Fatalf("#%d: %v", i, err)
		}
		if got := normalize(relayView.Of(reflect.ValueOf(a))); !reflect.DeepEqual(got, normalize(v.Value)) {
			t.Errorf("#%d: Go %v\nJS %v", i, got, v.Value)
		}
		if got, _ := a.AppendBinary(nil); !bytes.Equal(got, raw) {
			t.Errorf("#%d: re-encoded %x want %x", i, got, raw)
		}
	}
}
