package edge

import (
	"net/http"
	"strings"
	"testing"
)

// FuzzClientAddr: whatever X-Forwarded-For holds, the client address is
// the connection's peer or an entry the nearest proxies wrote, never one
// further left, where the client writes.
func FuzzClientAddr(f *testing.F) {
	f.Add("198.51.100.1, 203.0.113.9", uint8(1))
	f.Add("a,b,,c", uint8(2))
	f.Add("", uint8(1))
	f.Add("::1", uint8(3))
	f.Fuzz(func(t *testing.T, xff string, hops uint8) {
		if hops == 0 {
			return // --proxy-hops is at least 1
		}
		e := &Edge{cfg: Config{BehindProxy: true, ProxyHops: int(hops)}}
		r := &http.Request{RemoteAddr: "127.0.0.1:1", Header: http.Header{"X-Forwarded-For": {xff}}}
		got := e.clientAddr(r)
		entries := strings.Split(xff, ",")
		if got == r.RemoteAddr && len(entries) < int(hops) {
			return
		}
		if len(entries) < int(hops) {
			t.Fatalf("%q with %d hops: %q, but fewer entries than hops", xff, hops, got)
		}
		if want := strings.TrimSpace(entries[len(entries)-int(hops)]); got != want {
			t.Fatalf("%q with %d hops: %q, want %q", xff, hops, got, want)
		}
	})
}
