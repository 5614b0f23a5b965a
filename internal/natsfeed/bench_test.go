package natsfeed

import (
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/dhtrelay/dht-relay/internal/natstest"
)

// BenchmarkHop is the NATS hop every relayed byte takes between an edge
// and a worker, alone: 32 KiB payloads (a stream data frame's most)
// published by the library to a server in the process, as the all-in-one
// binary runs it, and received by a feed, with at most a credit window
// (1 MiB) on the way, as the relay's flow control allows. It reports the
// process's CPU per GB, the least the hop adds to what a relay spends per
// GB it moves.
func BenchmarkHop(b *testing.B) {
	const size, window = 32 << 10, 1 << 20
	ns := natstest.Run(b, natsserver.Options{DontListen: true})
	// Connected as dht-relay connects to its embedded server: with no
	// deadline on each write to the in-process pipe, which would make and
	// stop a timer for every flush.
	nc, err := nats.Connect("nats://embedded", nats.InProcessServer(ns), nats.FlusherTimeout(0))
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	var got atomic.Int64
	wake := make(chan struct{}, 1)
	f, err := Start(Config{NATS: nc, Subject: "hop", Handle: func(m Msg) {
		got.Add(int64(len(m.Data)))
		m.Lease.Release()
		select {
		case wake <- struct{}{}:
		default:
		}
	}, Lost: func(error) {}})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	payload := make([]byte, size)
	b.SetBytes(size)
	cpu0 := cpuTime(b)
	b.ResetTimer()
	sent := int64(0)
	for range b.N {
		for sent-got.Load() >= window {
			select {
			case <-wake:
			case <-time.After(10 * time.Second):
				b.Fatal("the feed stopped receiving")
			}
		}
		if err := nc.Publish("hop", payload); err != nil {
			b.Fatal(err)
		}
		sent += size
	}
	for got.Load() < sent {
		select {
		case <-wake:
		case <-time.After(10 * time.Second):
			b.Fatal("the feed stopped receiving")
		}
	}
	b.StopTimer()
	b.ReportMetric((cpuTime(b)-cpu0).Seconds()/(float64(sent)/1e9), "cpu-s/GB")
}

// cpuTime is the CPU time the process has used, in its code and the
// kernel's.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
