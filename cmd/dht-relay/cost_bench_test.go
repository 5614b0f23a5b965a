package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/interop"
)

// udxCounts are the worker's UDX counters, read from its metrics.
type udxCounts map[string]float64

var udxSeries = []struct{ name, prefix string }{
	{"data sent", `dhtrelay_udx_packets_total{event="data_sent"`},
	{"retransmitted", `dhtrelay_udx_packets_total{event="retransmitted"`},
	{"data received", `dhtrelay_udx_packets_total{event="data_received"`},
	{"acks received", `dhtrelay_udx_packets_total{event="ack_received"`},
	{"acks sent", `dhtrelay_udx_packets_total{event="ack_sent"`},
	{"send calls", `dhtrelay_udx_syscalls_total{op="send"`},
	{"receive calls", `dhtrelay_udx_syscalls_total{op="receive"`},
}

// relayRunning reports whether the relay pid still runs.
func relayRunning(pid int) bool {
	_, ok := procRSS(pid)
	return ok
}

// readUDX reads them in one scrape: a scrape costs the relay milliseconds
// of CPU, and the garbage it leaves is collected in the next run.
func readUDX(b *testing.B, metrics string) udxCounts {
	body, err := fetchBody("http://" + metrics + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	c := udxCounts{}
	for _, s := range udxSeries {
		c[s.name], _ = strconv.ParseFloat(metricIn(string(body), s.prefix), 64)
	}
	return c
}

// watchRSS samples pid's resident memory every rssEvery until the
// returned function is called, which returns the most it saw.
func watchRSS(pid int) (stop func() int64) {
	const rssEvery = 10 * time.Millisecond
	done, peak := make(chan struct{}), make(chan int64)
	go func() {
		var most int64
		t := time.NewTicker(rssEvery)
		defer t.Stop()
		for {
			if n, ok := procRSS(pid); ok {
				most = max(most, n)
			}
			select {
			case <-done:
				peak <- most
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 {
		close(done)
		return <-peak
	}
}

// perGB formats counts c, taken over bytes moved, per GB.
func (c udxCounts) perGB(bytes float64) string {
	out := ""
	for _, s := range udxSeries {
		out += fmt.Sprintf("%s %.0f, ", s.name, c[s.name]/(bytes/1e9))
	}
	return out[:len(out)-2]
}

// BenchmarkCostVsJSPeers measures what relaying costs when the peers are
// JS hyperdht nodes (udx-native), as most on the network are: the
// unchanged JS client downloads from a JS peer that sends, uploads to one
// that counts, and echoes through one (upload and download at once), in
// both modes, through this relay and the JS relay in the same run. It
// prints each relay's CPU per GB relayed and, for this relay, its UDX
// packets and system calls per GB, so that the next reader sees where the
// cost is, and each relay's most resident memory in each phase (a relay
// that reads a client's upload faster than it can send it holds the rest).
// It prints the JS peer's and the JS client's CPU per GB too: on
// one machine they share its processors with the relay, and how a relay
// sends moves what the peer spends, and with it the rate.
func BenchmarkCostVsJSPeers(b *testing.B) {
	interop.Require(b)
	// The JS client sends what is written in one tick as one message, and
	// the upload and the echo write all they send at once: one 64 MiB
	// message.
	const size, upSize, echoSize, runs = 256 << 20, 64 << 20, 64 << 20, 3
	costs := map[string][]cost{} // by mode and phase, ours first
	peer, boot := interop.StartTestnet(b)
	source, sink, echo := interop.RandomSeed(), interop.RandomSeed(), interop.RandomSeed()
	interop.RequireOK(b, "source", peer.Do("listenSource", source, strconv.Itoa(size)))
	interop.RequireOK(b, "sink", peer.Do("listenSink", sink))
	interop.RequireOK(b, "echo", peer.Do("listen", echo))
	ours := startRelayBinary(b, boot, "--allow-addresses", "127.0.0.1", "--metrics", "127.0.0.1:0")
	relays := []relayUnderTest{{name: "go", ws: ours.ws, pid: ours.cmd.Process.Pid}, startJSRelay(b, boot)}
	// A phase is one kind of transfer, run three times: the command the
	// JS client is given, and the bytes and rate one run moved.
	type phase struct {
		what string
		cmd  map[string]any
		done func(res map[string]any, took time.Duration) (moved, mbps float64)
	}
	phases := []phase{
		{"download", map[string]any{"cmd": "sink", "key": interop.PublicKey(source), "pauseMs": 0},
			func(res map[string]any, _ time.Duration) (float64, float64) {
				return res["bytes"].(float64), res["mbps"].(float64)
			}},
		{"upload", map[string]any{"cmd": "upload", "key": interop.PublicKey(sink), "bytes": upSize},
			func(res map[string]any, _ time.Duration) (float64, float64) { return upSize, res["mbps"].(float64) }},
		{"echo", map[string]any{"cmd": "connect", "key": interop.PublicKey(echo), "bytes": echoSize},
			func(_ map[string]any, took time.Duration) (float64, float64) {
				return 2 * echoSize, 2 * echoSize / 1e6 / took.Seconds() // up and down
			}},
	}
	// Through the JS relay, a non-custodial JS client crashes at random on
	// a connect (noise-handshake's recv is handed a handshake message past
	// its pattern's end, in the JS client; fresh clients crash no less
	// often), before any data moves: the crash is said, and a new client
	// runs the round again, up to jsRetries times a phase. A run through
	// this relay that fails fails the benchmark. The two relays take turns,
	// one round each, so that what the machine does meanwhile (its speed
	// drifts by 10-20% over minutes here) falls on both alike.
	const jsRetries = 6
	for _, mode := range []string{"noncustodial", "custodial"} {
		for _, p := range phases {
			tallies := make([]*tally, len(relays))
			for i, r := range relays {
				tallies[i] = &tally{u: interop.StartUser(b, "ws", r.ws, mode)}
				if r.name == "go" {
					tallies[i].udx = udxCounts{}
				}
			}
			// round runs the phase's command once through r and adds
			// what it cost to t.
			round := func(r relayUnderTest, t *tally) error {
				var u0 udxCounts
				if t.udx != nil {
					u0 = readUDX(b, ours.metrics)
				}
				if t.before == 0 {
					t.before, _ = procRSS(r.pid)
				}
				peak := watchRSS(r.pid)
				cpu0, _ := procTimes(r.pid)
				peer0, _ := procCPU(peer.Pid())
				client0, _ := procCPU(t.u.Pid())
				t0 := time.Now()
				res, err := t.u.Try(p.cmd)
				took := time.Since(t0)
				cpu1, ok := procTimes(r.pid)
				peer1, _ := procCPU(peer.Pid())
				client1, _ := procCPU(t.u.Pid())
				t.peak = max(t.peak, peak())
				if err != nil || res["ok"] != true || !ok {
					out, _ := json.Marshal(res)
					return fmt.Errorf("%s %v", out, firstLine(err))
				}
				t.user += cpu1.user - cpu0.user
				t.system += cpu1.system - cpu0.system
				t.peer += peer1 - peer0
				t.client += client1 - client0
				if t.udx != nil {
					for k, v := range readUDX(b, ours.metrics) {
						t.udx[k] += v - u0[k]
					}
				}
				n, rate := p.done(res, took)
				t.moved += n
				t.rates = append(t.rates, rate)
				return nil
			}
			for range runs {
				for i, r := range relays {
					t := tallies[i]
					if t.failed {
						continue
					}
					err := round(r, t)
					// Only the client's failure is run again: a JS relay
					// that has exited fails each round alike.
					for err != nil && r.name != "go" && t.retries < jsRetries && relayRunning(r.pid) {
						fmt.Fprintf(os.Stderr, "bench: js %s %s: the JS client failed (%v); a new one runs the round again\n", mode, p.what, err)
						t.retries++
						t.u = interop.StartUser(b, "ws", r.ws, mode)
						err = round(r, t)
					}
					if err != nil {
						fmt.Fprintf(os.Stderr, "bench: %s %s %s fails: %v\n", r.name, mode, p.what, err)
						if r.name == "go" {
							b.Errorf("this relay's %s %s failed", mode, p.what)
						}
						t.failed = true
					}
				}
			}
			for i, r := range relays {
				if c, ok := report(b, r, mode+" "+p.what, tallies[i]); ok {
					costs[mode+" "+p.what] = append(costs[mode+" "+p.what], c)
				}
			}
		}
	}
	// Set side by side: what ours spends against the JS relay, and what
	// its kernel time alone is against the JS relay's whole (the packets
	// are libudx's, the bytes the client's). The floor adds to it the work
	// every relayed byte needs whatever the relay's code: the hop through
	// NATS between edge and worker, and in custodial mode the cipher.
	cipher, hop := floorWork(b)
	fmt.Fprintf(os.Stderr, "bench: alone at one processor, this run: the cipher %.2f s per GB one way, the NATS hop %.2f s per GB\n", cipher, hop)
	for _, what := range slices.Sorted(maps.Keys(costs)) {
		c := costs[what]
		if len(c) != 2 || c[0].relay != "go" {
			continue
		}
		ours, js := c[0], c[1]
		floor := ours.system + hop
		if strings.HasPrefix(what, "custodial") {
			floor += cipher
		}
		fmt.Fprintf(os.Stderr, "bench: %s: ours %.2fx the JS relay's CPU per GB (user time %.2fx, kernel time %.2fx); kernel time ours %.2f s, JS relay %.2f s per GB; ours alone %.2fx the JS relay's whole; with the hop and cipher %.2fx; the JS peer spent %.2fx through ours what it did through the JS relay; memory at most ours %.0f MB, JS relay %.0f MB\n",
			what, ours.total()/js.total(), ours.user/js.user, ours.system/js.system, ours.system, js.system, ours.system/js.total(), floor/js.total(), ours.peer/js.peer, float64(ours.peak)/1e6, float64(js.peak)/1e6)
	}
}

// floorWork measures the CPU per GB of the cipher (sealing or opening,
// which a custodial relay does once to each byte) and of the NATS hop
// (publishing to the embedded server and receiving in the feed), each by
// its package's benchmark in a process of its own at one processor, as
// the relay runs at the load of one stream.
func floorWork(b *testing.B) (cipher, hop float64) {
	run := func(bench, pkg string) string {
		out, err := exec.Command("go", "test", "-run", "XXX", "-bench", bench, "-benchtime", "2s", "-cpu", "1", pkg).CombinedOutput()
		if err != nil {
			b.Fatalf("%s %s: %v\n%s", pkg, bench, err, out)
		}
		return string(out)
	}
	// One seal and one open of a 64 KiB message a loop: half of it is one way.
	ns := benchMetric(b, run("SealOpen/65536$", "github.com/dhtrelay/dht-relay/secretstream"), "ns/op")
	cipher = ns / 65536 / 2
	hop = benchMetric(b, run("Hop$", "github.com/dhtrelay/dht-relay/internal/natsfeed"), "cpu-s/GB")
	return cipher, hop
}

// benchMetric is the value of unit on the benchmark result line in out.
func benchMetric(b *testing.B, out, unit string) float64 {
	for line := range strings.Lines(out) {
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		for i := 1; i < len(f); i++ {
			if f[i] == unit {
				v, err := strconv.ParseFloat(f[i-1], 64)
				if err != nil {
					b.Fatalf("%s in %q: %v", unit, line, err)
				}
				return v
			}
		}
	}
	b.Fatalf("no %s in:\n%s", unit, out)
	return 0
}

// cost is what one relay spent per GB in one phase, in seconds, and what
// the JS peer did meanwhile.
type cost struct {
	relay        string
	user, system float64
	peer         float64
	peak         int64 // the relay's most resident memory, in bytes
}

func (c cost) total() float64 { return c.user + c.system }

// firstLine is the first line of err's text, or nothing.
func firstLine(err error) string {
	if err == nil {
		return ""
	}
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// tally is what one relay's client has moved in one phase, and what the
// relay spent on it, over the rounds that did not fail.
type tally struct {
	u            *interop.User
	user, system time.Duration
	peer, client time.Duration // the JS peer's and the JS client's CPU
	udx          udxCounts     // this relay's UDX counts, nil for the JS relay's
	moved        float64
	rates        []float64
	failed       bool
	retries      int // rounds run again with a new client after one failed
	// The relay's resident memory before the phase's first run, and
	// the most seen during its runs, in bytes.
	before, peak int64
}

// report prints what relay r spent per GB moved in tally t (and, for this
// relay, its UDX counts per GB), reports it as a metric and returns it.
func report(b *testing.B, r relayUnderTest, what string, t *tally) (cost, bool) {
	if t.moved == 0 {
		fmt.Fprintf(os.Stderr, "bench: %s %s: no figure (the relay exited or moved nothing)\n", r.name, what)
		return cost{}, false
	}
	gb := t.moved / 1e9
	c := cost{r.name, t.user.Seconds() / gb, t.system.Seconds() / gb, t.peer.Seconds() / gb, t.peak}
	line := fmt.Sprintf("bench: %s %s: %.0f MB/s, relay CPU %.2f s per GB (%.2f user, %.2f kernel), memory %.0f MB at most (%.0f MB before); the JS peer %.2f s, the JS client %.2f s per GB", r.name, what, median(t.rates), c.total(), c.user, c.system, float64(t.peak)/1e6, float64(t.before)/1e6, c.peer, t.client.Seconds()/gb)
	if t.retries > 0 {
		line += fmt.Sprintf("; the JS client failed %d times and its round ran again", t.retries)
	}
	if t.udx != nil {
		line += "; UDX per GB: " + t.udx.perGB(t.moved)
	}
	fmt.Fprintln(os.Stderr, line)
	b.ReportMetric(c.total(), r.name+"-"+strings.ReplaceAll(what, " ", "-")+"-cpu-s/GB")
	return c, true
}
