package main

import (
	"encoding/json"
	"fmt"
	"os"
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

func readUDX(b *testing.B, metrics string) udxCounts {
	c := udxCounts{}
	for _, s := range udxSeries {
		v, err := fetchMetric(metrics, s.prefix)
		if err != nil {
			b.Fatal(err)
		}
		c[s.name], _ = strconv.ParseFloat(v, 64)
	}
	return c
}

// perGB formats what changed from a to b, per GB of bytes.
func (a udxCounts) perGB(b udxCounts, bytes float64) string {
	out := ""
	for _, s := range udxSeries {
		out += fmt.Sprintf("%s %.0f, ", s.name, (b[s.name]-a[s.name])/(bytes/1e9))
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
// cost is.
func BenchmarkCostVsJSPeers(b *testing.B) {
	interop.Require(b)
	// The JS client sends what is written in one tick as one message, and
	// the upload and the echo write all they send at once: one 64 MiB
	// message.
	const size, upSize, echoSize, runs = 256 << 20, 64 << 20, 64 << 20, 3
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
	// Through the JS relay, a non-custodial client often crashes on a
	// connect (noise-handshake, in the JS client): each phase has a client
	// of its own, and a run whose client crashed is said and not counted.
	for _, mode := range []string{"noncustodial", "custodial"} {
		for _, r := range relays {
			for _, p := range phases {
				u := interop.StartUser(b, "ws", r.ws, mode)
				var u0 udxCounts
				if r.name == "go" {
					u0 = readUDX(b, ours.metrics)
				}
				cpu0, _ := procCPU(r.pid)
				var moved float64
				var rates []float64
				for range runs {
					t0 := time.Now()
					res, err := u.Try(p.cmd)
					if err != nil || res["ok"] != true {
						b, _ := json.Marshal(res)
						fmt.Fprintf(os.Stderr, "bench: %s %s %s fails: %s %v\n", r.name, mode, p.what, b, firstLine(err))
						break
					}
					n, rate := p.done(res, time.Since(t0))
					moved += n
					rates = append(rates, rate)
				}
				report(b, r, mode+" "+p.what, cpu0, u0, ours.metrics, moved, rates)
			}
		}
	}
}

// firstLine is the first line of err's text, or nothing.
func firstLine(err error) string {
	if err == nil {
		return ""
	}
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// report prints what relay r spent per GB moved since cpu0 (and, for this
// relay, since the UDX counts u0) and reports it as a metric.
func report(b *testing.B, r relayUnderTest, what string, cpu0 time.Duration, u0 udxCounts, metrics string, moved float64, rates []float64) {
	cpu, ok := procCPU(r.pid)
	if !ok || moved == 0 {
		fmt.Fprintf(os.Stderr, "bench: %s %s: no figure (the relay exited or moved nothing)\n", r.name, what)
		return
	}
	perGB := (cpu - cpu0).Seconds() / (moved / 1e9)
	line := fmt.Sprintf("bench: %s %s: %.0f MB/s, relay CPU %.2f s per GB", r.name, what, median(rates), perGB)
	if u0 != nil {
		line += "; UDX per GB: " + u0.perGB(readUDX(b, metrics), moved)
	}
	fmt.Fprintln(os.Stderr, line)
	b.ReportMetric(perGB, r.name+"-"+strings.ReplaceAll(what, " ", "-")+"-cpu-s/GB")
}
