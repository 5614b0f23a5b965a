package interop

import (
	"encoding/hex"
	"net/netip"
	"reflect"
	"strings"
	"unicode"
)

// JSName maps a Go field name to the JS one: ID → id, UDX → udx,
// RemoteID → remoteId, PeerAddress → peerAddress.
func JSName(f string) string {
	if strings.ToUpper(f) == f {
		return strings.ToLower(f)
	}
	if base, ok := strings.CutSuffix(f, "ID"); ok {
		f = base + "Id"
	}
	r := []rune(f)
	r[0] = unicode.ToLower(r[0])
	return string(r)
}

// JSView renders Go values in the shape test/interop/lib/json.js prints
// JS ones, for comparing the two field by field: buffers and fixed-size
// byte arrays as hex, addresses as {host, port}, numbers as float64,
// structs as objects keyed by JSName with embedded structs spread into
// them. A package's own shapes come first, through its hooks.
type JSView struct {
	// Value renders v itself when it is of a shape the package knows; ok
	// false leaves v to the defaults.
	Value func(v reflect.Value) (out any, ok bool)
	// Field puts struct field f of value v into out itself (a field the
	// JS side renames or spreads); false leaves it to the defaults.
	Field func(f reflect.StructField, v reflect.Value, out map[string]any) bool
	// NilBytes is what a nil byte slice renders as: what the JS side
	// prints for the absent buffer the Go one decodes to.
	NilBytes any
}

// Of renders v.
func (j JSView) Of(v reflect.Value) any {
	if j.Value != nil {
		if out, ok := j.Value(v); ok {
			return out
		}
	}
	switch x := v.Interface().(type) {
	case []byte:
		if x == nil {
			return j.NilBytes
		}
		return hex.EncodeToString(x)
	case netip.AddrPort:
		return map[string]any{"host": x.Addr().String(), "port": float64(x.Port())}
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return j.Of(v.Elem())
	case reflect.Array:
		b := make([]byte, v.Len())
		reflect.Copy(reflect.ValueOf(b), v)
		return hex.EncodeToString(b)
	case reflect.Slice:
		out := []any{}
		for i := 0; i < v.Len(); i++ {
			out = append(out, j.Of(v.Index(i)))
		}
		return out
	case reflect.Struct:
		out := map[string]any{}
		j.fields(v, out)
		return out
	case reflect.Bool:
		return v.Bool()
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uint:
		return float64(v.Uint())
	case reflect.String:
		return v.String()
	}
	panic("interop: no JS view of " + v.Type().String())
}

func (j JSView) fields(v reflect.Value, out map[string]any) {
	for i := 0; i < v.NumField(); i++ {
		f, fv := v.Type().Field(i), v.Field(i)
		switch {
		case j.Field != nil && j.Field(f, fv, out):
		case f.Anonymous && fv.Kind() == reflect.Struct:
			j.fields(fv, out)
		default:
			out[JSName(f.Name)] = j.Of(fv)
		}
	}
}
