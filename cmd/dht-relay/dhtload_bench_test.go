package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/interop"
)

// load runs relay-load.js against r and decodes its one line of result
// into out.
func load(b *testing.B, r relayUnderTest, out any, args ...string) {
	b.Helper()
	p := interop.Start(b, "relay-load.js", append([]string{r.ws}, args...)...)
	line, err := p.ReadLineWithin(5 * time.Minute)
	if err != nil {
		b.Fatalf("%s %v: %v", r.name, args, err)
	}
	if err := json.Unmarshal([]byte(line), out); err != nil {
		b.Fatalf("%s %v: %v: %s", r.name, args, err, line)
	}
}

type dhtLoad struct {
	MS     float64
	Found  int
	Failed int
}

// lookupsMS returns the median of k lookups of topic by one session. Ours
// must find the peer every time; the JS relay's misses are reported.
func lookupsMS(b *testing.B, r relayUnderTest, k int, topic string) float64 {
	var res struct {
		MS    []float64
		Found int
	}
	load(b, r, &res, "lookups", strconv.Itoa(k), topic)
	if res.Found != k {
		if r.name == "go" {
			b.Errorf("%s: %d of %d lookups found the peer", r.name, res.Found, k)
		}
		fmt.Fprintf(os.Stderr, "bench: %s: %d of %d lookups found the peer\n", r.name, res.Found, k)
	}
	return median(res.MS)
}

// BenchmarkDHTLoadVsJS measures dht-relay and the JS relay's own bin side
// by side, on one JS testnet, with the unchanged JS client, under DHT load:
// many sessions each announcing and then looking up at once, the rate of
// new sessions that each open a stream to a JS echo peer, and an honest
// client's lookups while another session floods lookups and connects at
// its limits. Run it once:
// go test -run XXX -bench DHTLoadVsJS -benchtime 1x ./cmd/dht-relay
func BenchmarkDHTLoadVsJS(b *testing.B) {
	interop.Require(b)
	peer, boot := interop.StartTestnet(b)
	echoSeed := interop.RandomSeed()
	interop.RequireOK(b, "echo", peer.Do("listen", echoSeed))
	topic := interop.RandomSeed()
	interop.RequireOK(b, "announce", peer.Do("announce", topic, interop.RandomSeed()))
	// Every client of the benchmark comes from one address.
	ours := startRelayBinary(b, boot, "--allow-addresses", "127.0.0.1")
	relays := []relayUnderTest{{name: "go", ws: ours.ws, pid: ours.cmd.Process.Pid}, startJSRelay(b, boot)}
	progress := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...) }

	type figures struct {
		dht100, dht1000, setupRate, idleLookup, floodLookup float64
	}
	got := map[string]*figures{}
	for _, r := range relays {
		f := &figures{}
		got[r.name] = f
		for _, n := range []int{100, 1000} {
			var res dhtLoad
			load(b, r, &res, "dht", strconv.Itoa(n), topic)
			progress("%s: %d sessions announcing then looking up: %.0f ms, %d found the peer, %d failed", r.name, n, res.MS, res.Found, res.Failed)
			if n == 100 {
				if res.Found != n {
					b.Errorf("%s: %d of %d lookups found the peer", r.name, res.Found, n)
				}
				f.dht100 = res.MS
			} else {
				f.dht1000 = res.MS
			}
		}
		// Three rounds, the median: the rate moves with whatever else
		// the two cores are doing.
		var rates []float64
		for range 3 {
			var setup struct {
				PerSecond float64
				Failed    int
			}
			load(b, r, &setup, "setup", "500", "50", interop.PublicKey(echoSeed))
			progress("%s: session setup with one stream, 50 at a time: %.1f a second, %d failed", r.name, setup.PerSecond, setup.Failed)
			rates = append(rates, setup.PerSecond)
		}
		f.setupRate = median(rates)

		f.idleLookup = lookupsMS(b, r, 10, topic)
		flood := interop.Start(b, "relay-load.js", r.ws, "flood", "32", "64")
		if line, err := flood.ReadLineWithin(time.Minute); err != nil {
			b.Fatalf("%s flood: %v %s", r.name, err, line)
		}
		time.Sleep(2 * time.Second) // let the flood fill its share
		f.floodLookup = lookupsMS(b, r, 10, topic)
		flood.Stdin.Close()
		if line, err := flood.ReadLineWithin(time.Minute); err == nil {
			progress("%s flood: %s", r.name, line)
		}
		progress("%s: an honest lookup %.1f ms idle, %.1f ms beside a flooding session (%.2fx)", r.name, f.idleLookup, f.floodLookup, f.floodLookup/f.idleLookup)
	}
	g, j := got["go"], got["js"]
	b.ReportMetric(g.dht100, "go-100-sessions-ms")
	b.ReportMetric(j.dht100, "js-100-sessions-ms")
	b.ReportMetric(g.dht100/j.dht100, "100-sessions-time-x")
	b.ReportMetric(g.dht1000, "go-1000-sessions-ms")
	b.ReportMetric(j.dht1000, "js-1000-sessions-ms")
	b.ReportMetric(g.setupRate, "go-setups/s")
	b.ReportMetric(j.setupRate, "js-setups/s")
	b.ReportMetric(g.setupRate/j.setupRate, "setup-rate-x")
	b.ReportMetric(g.idleLookup, "go-idle-lookup-ms")
	b.ReportMetric(g.floodLookup, "go-flooded-lookup-ms")
	b.ReportMetric(g.floodLookup/g.idleLookup, "go-flooded-lookup-x")
	b.ReportMetric(j.idleLookup, "js-idle-lookup-ms")
	b.ReportMetric(j.floodLookup, "js-flooded-lookup-ms")
}
