package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/interop"
)

// percentiles returns the median and the 99th percentile of ms.
func percentiles(ms []float64) (float64, float64) {
	slices.Sort(ms)
	return ms[len(ms)/2], ms[len(ms)*99/100]
}

// roundTrips decodes a {"ok": true, "ms": [...]} answer.
func roundTrips(b *testing.B, what string, r map[string]any) []float64 {
	b.Helper()
	if r["ok"] != true {
		b.Fatalf("%s: %v", what, r)
	}
	var ms []float64
	for _, v := range r["ms"].([]any) {
		ms = append(ms, v.(float64))
	}
	return ms
}

// BenchmarkLatencyVsJS measures the round trip of 64-byte messages echoed
// one at a time by a JS peer through dht-relay and through the JS relay,
// side by side on one JS testnet with the unchanged JS client, both modes,
// and with no relay (a JS node connecting to the peer itself): median and
// 99th percentile of 500 round trips. Run it once:
// go test -run XXX -bench LatencyVsJS -benchtime 1x ./cmd/dht-relay
func BenchmarkLatencyVsJS(b *testing.B) {
	const n, size = 500, 64
	interop.Require(b)
	peer, boot := interop.StartTestnet(b)
	echoSeed := interop.RandomSeed()
	interop.RequireOK(b, "echo", peer.Do("listen", echoSeed))
	key := interop.PublicKey(echoSeed)
	ours := startRelayBinary(b, boot)
	relays := []relayUnderTest{{name: "go", ws: ours.ws, pid: ours.cmd.Process.Pid}, startJSRelay(b, boot)}

	p := interop.Start(b, "hyperdht-pingpong.js", boot, key, fmt.Sprint(n), fmt.Sprint(size))
	line, err := p.ReadLineWithin(2 * time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	var direct map[string]any
	if err := json.Unmarshal([]byte(line), &direct); err != nil {
		b.Fatal(err)
	}
	dm, dp := percentiles(roundTrips(b, "no relay", direct))
	fmt.Fprintf(os.Stderr, "bench: no relay: median %.3f ms, p99 %.3f ms\n", dm, dp)
	b.ReportMetric(dm, "direct-median-ms")
	// Non-custodial first: the JS relay serves its first non-custodial
	// session, and a later one crashes its JS client (a TypeError in the
	// handshake of @hyperswarm/dht-relay's client).
	for _, mode := range []string{"noncustodial", "custodial"} {
		for _, r := range relays {
			u := interop.StartUser(b, "ws", r.ws, mode)
			ms := roundTrips(b, r.name+" "+mode, u.Do(map[string]any{"cmd": "pingpong", "key": key, "n": n, "bytes": size}))
			med, p99 := percentiles(ms)
			fmt.Fprintf(os.Stderr, "bench: %s %s: median %.3f ms, p99 %.3f ms\n", r.name, mode, med, p99)
			b.ReportMetric(med, r.name+"-"+mode+"-median-ms")
			b.ReportMetric(p99, r.name+"-"+mode+"-p99-ms")
		}
	}
}
