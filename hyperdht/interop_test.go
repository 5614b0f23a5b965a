package hyperdht

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"

	"github.com/dhtrelay/dht-relay/internal/interop"
)

// message is what every codec here implements.
type message interface {
	Encode(b []byte) []byte
	Decode(p []byte) error
}

var codecs = map[string]func() message{
	"handshake":          func() message { return &Handshake{} },
	"noisePayload":       func() message { return &NoisePayload{} },
	"holepunch":          func() message { return &Holepunch{} },
	"holepunchPayload":   func() message { return &HolepunchPayload{} },
	"peer":               func() message { return &Peer{} },
	"lookupRawReply":     func() message { return &LookupRawReply{} },
	"announce":           func() message { return &Announce{} },
	"mutableSignable":    func() message { return &MutableSignable{} },
	"mutablePutRequest":  func() message { return &MutablePutRequest{} },
	"mutableGetResponse": func() message { return &MutableGetResponse{} },
	"pluginRequest":      func() message { return &PluginRequest{} },
}

// normalize makes the two sides comparable: absent, null and empty arrays
// are the same, version fields the JS side reports are dropped where Go
// keeps none, and hosts are parsed so IPv6 spellings agree.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			e = normalize(e)
			if e == nil || k == "version" || k == "family" {
				continue
			}
			if a, ok := e.([]any); ok && len(a) == 0 {
				continue
			}
			if s, ok := e.(string); ok && k == "host" {
				if a, err := netip.ParseAddr(s); err == nil {
					e = a.Unmap().String()
				}
			}
			out[k] = e
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case []any:
		out := []any{}
		for _, e := range x {
			out = append(out, normalize(e))
		}
		return out
	}
	return v
}

func same(t *testing.T, js json.RawMessage, goValue any) bool {
	t.Helper()
	var j any
	json.Unmarshal(js, &j)
	a, _ := json.Marshal(normalize(j))
	g, _ := json.Marshal(goValue)
	var gv any
	json.Unmarshal(g, &gv)
	b, _ := json.Marshal(normalize(gv))
	if !bytes.Equal(a, b) {
		t.Logf("JS %s\nGo %s", a, b)
		return false
	}
	return true
}

type hvec struct {
	Codec string          `json:"codec"`
	Value json.RawMessage `json:"value"`
	Hex   string          `json:"hex"`
}

// TestVectorsFromJS decodes what hyperdht's codecs encode, compares every
// field and re-encodes to the same bytes.
func TestVectorsFromJS(t *testing.T) {
	var vs []hvec
	if err := json.Unmarshal(interop.Run(t, nil, "hyperdht-vectors.js", "encode"), &vs); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, v := range vs {
		m := codecs[v.Codec]()
		raw, _ := hex.DecodeString(v.Hex)
		if err := m.Decode(raw); err != nil {
			t.Errorf("#%d %s: %v", i, v.Codec, err)
			continue
		}
		seen[v.Codec] = true
		if !same(t, v.Value, interop.JSView{}.Of(reflect.ValueOf(m))) {
			t.Errorf("#%d %s: fields differ", i, v.Codec)
		}
		if got := m.Encode(nil); !bytes.Equal(got, raw) {
			t.Errorf("#%d %s: re-encoded %x\nwant %x", i, v.Codec, got, raw)
		}
	}
	if len(seen) != len(codecs) {
		t.Fatalf("vectors cover %d of %d codecs", len(seen), len(codecs))
	}
}

func fill(r *rand.Rand, v reflect.Value) {
	switch x := v.Addr().Interface().(type) {
	case *netip.AddrPort:
		if r.IntN(2) == 0 {
			*x = netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(r.Uint32()), 1, 2, byte(r.Uint32())}), uint16(r.Uint32()))
		} else {
			*x = netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 1, 0xd, 0xb8, 15: byte(r.Uint32())}), uint16(r.Uint32()))
		}
		return
	case *[]byte:
		*x = make([]byte, []int{0, 1, 64, 300}[r.IntN(4)])
		for i := range *x {
			(*x)[i] = byte(r.Uint32())
		}
		return
	case *string:
		*x = []string{"", "blind-relay", "ümlaut"}[r.IntN(3)]
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if r.IntN(3) > 0 {
			v.Set(reflect.New(v.Type().Elem()))
			fill(r, v.Elem())
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			fill(r, v.Field(i))
		}
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			v.Index(i).SetUint(uint64(byte(r.Uint32())))
		}
	case reflect.Slice:
		if r.IntN(4) == 0 {
			return // nil: absent
		}
		n := r.IntN(3)
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := 0; i < n; i++ {
			fill(r, s.Index(i))
		}
		v.Set(s)
	case reflect.Bool:
		v.SetBool(r.IntN(2) == 1)
	case reflect.Uint64:
		v.SetUint([]uint64{0, 1, 252, 253, 70000, 1 << 40}[r.IntN(6)])
	}
}

// smallFields keeps the fields the JS encoders size as one byte (they
// preencode mode, error, firewall and round as a single byte) below 253.
func smallFields(v reflect.Value) {
	for i := 0; i < v.NumField(); i++ {
		switch v.Type().Field(i).Name {
		case "Mode", "Error", "Firewall", "Round":
			v.Field(i).SetUint(v.Field(i).Uint() % 253)
		}
	}
}

// TestVectorsToJS has hyperdht's codecs decode random Go encodings to the
// same fields and re-encode them to the same bytes.
func TestVectorsToJS(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	var in []hvec
	var msgs []message
	for name, mk := range codecs {
		for range 40 {
			m := mk()
			fill(r, reflect.ValueOf(m).Elem())
			if p, ok := m.(*NoisePayload); ok && p.UDX != nil {
				p.UDX.Version = 1
			}
			smallFields(reflect.ValueOf(m).Elem())
			// Normalise through our own decoder, so absent fields read as
			// the JS side will read them.
			d := mk()
			if err := d.Decode(m.Encode(nil)); err != nil {
				t.Fatalf("%s: own round trip: %v", name, err)
			}
			msgs = append(msgs, d)
			in = append(in, hvec{Codec: name, Hex: hex.EncodeToString(d.Encode(nil))})
		}
	}
	body, _ := json.Marshal(in)
	var out []hvec
	if err := json.Unmarshal(interop.Run(t, body, "hyperdht-vectors.js", "decode"), &out); err != nil {
		t.Fatal(err)
	}
	for i, o := range out {
		label := fmt.Sprintf("#%d %s", i, in[i].Codec)
		if o.Hex != in[i].Hex {
			t.Errorf("%s: JS re-encoded %s\nwant %s", label, o.Hex, in[i].Hex)
		}
		if !same(t, o.Value, interop.JSView{}.Of(reflect.ValueOf(msgs[i]))) {
			t.Errorf("%s: fields differ", label)
		}
	}
}

func TestNoisePayloadOtherVersion(t *testing.T) {
	var p NoisePayload
	if err := p.Decode([]byte{2, 0xff, 0xff}); err != nil || p.Version != 2 || p.UDX != nil {
		t.Fatalf("version 2: %+v, %v", p, err)
	}
}
