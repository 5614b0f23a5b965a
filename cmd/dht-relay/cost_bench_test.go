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
// unchanged JS client downloads from a JS peer that sends, and echoes
// through a JS peer (upload and download at once), in both modes, through
// this relay and the JS relay in the same run. It prints each relay's CPU
// per GB relayed and, for this relay, its UDX packets and system calls per
// GB, so that the next reader sees where the cost is.
func BenchmarkCostVsJSPeers(b *testing.B) {
	interop.Require(b)
	// The JS client sends what is written in one tick as one message, and
	// the echo writes all it sends at once: one 64 MiB message.
	const size, echoSize, runs = 256 << 20, 64 << 20, 3
	peer, boot := interop.StartTestnet(b)
	source, echo := interop.RandomSeed(), interop.RandomSeed()
	interop.RequireOK(b, "source", peer.Do("listenSource", source, strconv.Itoa(size)))
	interop.RequireOK(b, "echo", peer.Do("listen", echo))
	ours := startRelayBinary(b, boot, "--allow-addresses", "127.0.0.1", "--metrics", "127.0.0.1:0")
	relays := []relayUnderTest{{name: "go", ws: ours.ws, pid: ours.cmd.Process.Pid}, startJSRelay(b, boot)}
	report := func(r relayUnderTest, what string, cpu0 time.Duration, u0 udxCounts, moved float64, rates []float64) {
		cpu, ok := procCPU(r.pid)
		if !ok || moved == 0 {
			fmt.Fprintf(os.Stderr, "bench: %s %s: no figure (the relay exited or moved nothing)\n", r.name, what)
			return
		}
		perGB := (cpu - cpu0).Seconds() / (moved / 1e9)
		line := fmt.Sprintf("bench: %s %s: %.0f MB/s, relay CPU %.2f s per GB", r.name, what, median(rates), perGB)
		if u0 != nil {
			line += "; UDX per GB: " + u0.perGB(readUDX(b, ours.metrics), moved)
		}
		fmt.Fprintln(os.Stderr, line)
		b.ReportMetric(perGB, r.name+"-"+strings.ReplaceAll(what, " ", "-")+"-cpu-s/GB")
	}
	// The JS relay's process can fail in non-custodial mode: those runs
	// come last.
	for _, mode := range []string{"custodial", "noncustodial"} {
		for _, r := range relays {
			u := interop.StartUser(b, "ws", r.ws, mode)
			var u0 udxCounts
			if r.name == "go" {
				u0 = readUDX(b, ours.metrics)
			}
			cpu0, _ := procCPU(r.pid)
			var moved float64
			var rates []float64
			for range runs {
				res := u.Do(map[string]any{"cmd": "sink", "key": interop.PublicKey(source), "pauseMs": 0})
				if res["ok"] != true {
					fmt.Fprintf(os.Stderr, "bench: %s %s download fails: %v\n", r.name, mode, res)
					break
				}
				moved += res["bytes"].(float64)
				rates = append(rates, res["mbps"].(float64))
			}
			report(r, mode+" download", cpu0, u0, moved, rates)
			if r.name == "go" {
				u0 = readUDX(b, ours.metrics)
			}
			cpu0, _ = procCPU(r.pid)
			moved, rates = 0, nil
			for range runs {
				t0 := time.Now()
				res := u.Do(map[string]any{"cmd": "connect", "key": interop.PublicKey(echo), "bytes": echoSize})
				if res["ok"] != true {
					b, _ := json.Marshal(res)
					fmt.Fprintf(os.Stderr, "bench: %s %s echo fails: %s\n", r.name, mode, b)
					break
				}
				moved += 2 * echoSize // up and down
				rates = append(rates, 2*echoSize/1e6/time.Since(t0).Seconds())
			}
			report(r, mode+" echo", cpu0, u0, moved, rates)
		}
	}
}
