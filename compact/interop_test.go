package compact

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"testing"

	"github.com/dhtrelay/dht-relay/internal/interop"
)

type addrJSON struct {
	Host   string `json:"host"`
	Port   uint16 `json:"port"`
	Family int    `json:"family"`
}

// codec is a Go encoder and decoder for one JS codec, over the JSON form of
// values the interop program prints.
type codec struct {
	enc func(b []byte, v json.RawMessage) []byte
	dec func(r *Reader) any
}

func num(v json.RawMessage) uint64 {
	n, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil {
		panic(fmt.Sprintf("not a uint: %s", v))
	}
	return n
}

func hexOf(v json.RawMessage) []byte {
	var s string
	json.Unmarshal(v, &s)
	b, _ := hex.DecodeString(s)
	return b
}

func addrOf(v json.RawMessage) netip.AddrPort {
	var a addrJSON
	json.Unmarshal(v, &a)
	return netip.AddrPortFrom(netip.MustParseAddr(a.Host), a.Port)
}

// addrView renders an address as compact-encoding-net decodes it: IPv6
// hosts as eight uncompressed hex groups.
func addrView(ap netip.AddrPort, family int) addrJSON {
	a := ap.Addr()
	if family == 4 {
		return addrJSON{a.Unmap().String(), ap.Port(), family}
	}
	b := a.As16()
	host := ""
	for i := 0; i < 16; i += 2 {
		if i > 0 {
			host += ":"
		}
		host += strconv.FormatUint(uint64(b[i])<<8|uint64(b[i+1]), 16)
	}
	return addrJSON{host, ap.Port(), family}
}

var codecs = map[string]codec{
	"uint": {func(b []byte, v json.RawMessage) []byte { return AppendUint(b, num(v)) }, func(r *Reader) any { return r.Uint() }},
	"int": {func(b []byte, v json.RawMessage) []byte {
		n, _ := strconv.ParseInt(string(v), 10, 64)
		return AppendInt(b, n)
	}, func(r *Reader) any { return r.Int() }},
	"uint8":  {func(b []byte, v json.RawMessage) []byte { return append(b, byte(num(v))) }, func(r *Reader) any { return r.Uint8() }},
	"uint16": {func(b []byte, v json.RawMessage) []byte { return AppendUint16(b, uint16(num(v))) }, func(r *Reader) any { return r.Uint16() }},
	"uint24": {func(b []byte, v json.RawMessage) []byte { return AppendUint24(b, uint32(num(v))) }, func(r *Reader) any { return r.Uint24() }},
	"uint32": {func(b []byte, v json.RawMessage) []byte { return AppendUint32(b, uint32(num(v))) }, func(r *Reader) any { return r.Uint32() }},
	"uint64": {func(b []byte, v json.RawMessage) []byte { return AppendUint64(b, num(v)) }, func(r *Reader) any { return r.Uint64() }},
	"bool":   {func(b []byte, v json.RawMessage) []byte { return AppendBool(b, string(v) == "true") }, func(r *Reader) any { return r.Bool() }},
	"buffer": {func(b []byte, v json.RawMessage) []byte { return AppendBuffer(b, hexOf(v)) }, func(r *Reader) any { return hex.EncodeToString(r.Buffer()) }},
	"string": {func(b []byte, v json.RawMessage) []byte {
		var s string
		json.Unmarshal(v, &s)
		return AppendString(b, s)
	}, func(r *Reader) any { return r.String() }},
	"fixed32": {func(b []byte, v json.RawMessage) []byte { return append(b, hexOf(v)...) }, func(r *Reader) any { v := r.Fixed32(); return hex.EncodeToString(v[:]) }},
	"fixed64": {func(b []byte, v json.RawMessage) []byte { return append(b, hexOf(v)...) }, func(r *Reader) any { v := r.Fixed64(); return hex.EncodeToString(v[:]) }},
	"uintArray": {func(b []byte, v json.RawMessage) []byte {
		var ns []json.RawMessage
		json.Unmarshal(v, &ns)
		b = AppendUint(b, uint64(len(ns)))
		for _, n := range ns {
			b = AppendUint(b, num(n))
		}
		return b
	}, func(r *Reader) any {
		out := []uint64{}
		for range r.ArrayLen(1) {
			out = append(out, r.Uint())
		}
		return out
	}},
	"ipv4Address": {func(b []byte, v json.RawMessage) []byte { return AppendIPv4(b, addrOf(v)) }, func(r *Reader) any { return addrView(r.IPv4(), 4) }},
	"ipv6Address": {func(b []byte, v json.RawMessage) []byte { return AppendIPv6(b, addrOf(v)) }, func(r *Reader) any { return addrView(r.IPv6(), 6) }},
}

type cvec struct {
	Codec string          `json:"codec"`
	Value json.RawMessage `json:"value"`
	Hex   string          `json:"hex"`
}

func sameJSON(t *testing.T, a json.RawMessage, b any) bool {
	t.Helper()
	bb, _ := json.Marshal(b)
	var x, y any
	d := json.NewDecoder(bytes.NewReader(a))
	d.UseNumber()
	d.Decode(&x)
	d = json.NewDecoder(bytes.NewReader(bb))
	d.UseNumber()
	d.Decode(&y)
	xs, _ := json.Marshal(x)
	ys, _ := json.Marshal(y)
	return bytes.Equal(xs, ys)
}

// TestVectorsFromJS encodes the values compact-encoding encodes and decodes
// its bytes, including every uint length boundary.
func TestVectorsFromJS(t *testing.T) {
	var vs []cvec
	if err := json.Unmarshal(interop.Run(t, nil, "compact-vectors.js", "encode"), &vs); err != nil {
		t.Fatal(err)
	}
	for i, v := range vs {
		c, ok := codecs[v.Codec]
		if !ok {
			t.Fatalf("no Go codec for %s", v.Codec)
		}
		if got := hex.EncodeToString(c.enc(nil, v.Value)); got != v.Hex {
			t.Errorf("#%d %s %s: Go encodes %s, JS %s", i, v.Codec, v.Value, got, v.Hex)
		}
		raw, _ := hex.DecodeString(v.Hex)
		r := NewReader(raw)
		got := c.dec(r)
		if r.Err() != nil || r.Len() != 0 {
			t.Errorf("#%d %s: decode err %v, %d bytes left", i, v.Codec, r.Err(), r.Len())
		}
		if !sameJSON(t, v.Value, got) {
			t.Errorf("#%d %s: Go decodes %v, JS value %s", i, v.Codec, got, v.Value)
		}
	}
}

// TestVectorsToJS has compact-encoding decode random Go encodings and
// re-encode them to the same bytes and values.
func TestVectorsToJS(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var in []cvec
	var want []any
	add := func(codec string, b []byte) {
		in = append(in, cvec{Codec: codec, Hex: hex.EncodeToString(b)})
		want = append(want, codecs[codec].dec(NewReader(b)))
	}
	for range 200 {
		n := r.Uint64() >> r.IntN(64)
		if n > 1<<53-1 {
			n >>= 11
		}
		add("uint", AppendUint(nil, n))
		add("int", AppendInt(nil, int64(n)*int64(1-2*r.IntN(2))>>1))
		add("uint32", AppendUint32(nil, r.Uint32()))
		p := make([]byte, r.IntN(600)+1)
		for i := range p {
			p[i] = byte(r.Uint32())
		}
		add("buffer", AppendBuffer(nil, p))
		add("string", AppendString(nil, string([]rune{rune(r.IntN(0x10000-0xe000) + 0xe000), 'é', rune('a' + r.IntN(26))})))
		add("ipv4Address", AppendIPv4(nil, netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())}), uint16(r.Uint32()))))
	}
	body, _ := json.Marshal(in)
	var out []cvec
	if err := json.Unmarshal(interop.Run(t, body, "compact-vectors.js", "decode"), &out); err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("JS decoded %d of %d", len(out), len(in))
	}
	for i := range out {
		if out[i].Hex != in[i].Hex {
			t.Errorf("#%d %s: JS re-encodes %s, Go %s", i, in[i].Codec, out[i].Hex, in[i].Hex)
		}
		if !sameJSON(t, out[i].Value, want[i]) {
			t.Errorf("#%d %s: JS decodes %s, Go %v", i, in[i].Codec, out[i].Value, want[i])
		}
	}
}
