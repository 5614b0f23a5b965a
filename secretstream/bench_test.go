package secretstream

import (
	"encoding/json"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/interop"
)

// memPipe is one direction of an in-memory duplex: whole writes are queued
// (up to memPipeDepth) and read back in order.
type memPipe struct {
	ch      chan []byte
	pending []byte
}

const memPipeDepth = 16

func (p *memPipe) read(b []byte) (int, error) {
	if len(p.pending) == 0 {
		m, ok := <-p.ch
		if !ok {
			return 0, io.EOF
		}
		p.pending = m
	}
	n := copy(b, p.pending)
	p.pending = p.pending[n:]
	return n, nil
}

type memConn struct{ in, out *memPipe }

func (c memConn) Read(b []byte) (int, error) { return c.in.read(b) }
func (c memConn) Write(b []byte) (int, error) {
	c.out.ch <- append([]byte(nil), b...)
	return len(b), nil
}
func (c memConn) Close() error { close(c.out.ch); return nil }

func memStreams(tb testing.TB) (*Stream, *Stream) {
	ab := &memPipe{ch: make(chan []byte, memPipeDepth)}
	ba := &memPipe{ch: make(chan []byte, memPipeDepth)}
	return streamsOver(tb, memConn{ba, ab}, memConn{ab, ba}, 0)
}

// goThroughput streams total bytes in messages of size from one Stream to
// another over memory, as the JS benchmark does over its bridges, and
// returns MB/s.
func goThroughput(tb testing.TB, total, size int) float64 {
	a, b := memStreams(tb)
	msg := make([]byte, size)
	start := time.Now()
	go func() {
		for sent := 0; sent < total; sent += size {
			a.WriteMessage(msg)
		}
	}()
	for got := 0; got < total; {
		m, err := b.ReadMessage()
		if err != nil {
			tb.Fatal(err)
		}
		got += len(m)
	}
	return float64(total) / time.Since(start).Seconds() / 1e6
}

func jsThroughput(tb testing.TB, total, size int) float64 {
	var out struct{ Mbps float64 }
	raw := interop.Run(tb, nil, "secretstream-bench.js", strconv.Itoa(total), strconv.Itoa(size))
	if err := json.Unmarshal(raw, &out); err != nil {
		tb.Fatal(err)
	}
	return out.Mbps
}

// BenchmarkVersusJS measures encrypt-plus-decrypt stream throughput of this
// package and of @hyperswarm/secret-stream in the same run, both with the
// two ends in one process joined in memory, and reports both and their
// ratio. Each iteration moves 256 MiB through each implementation.
func BenchmarkVersusJS(b *testing.B) {
	const total = 256 << 20
	for _, size := range []int{1 << 10, 64 << 10} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			var goMB, jsMB float64
			for range b.N {
				goMB += goThroughput(b, total, size)
				jsMB += jsThroughput(b, total, size)
			}
			n := float64(b.N)
			b.ReportMetric(goMB/n, "go-MB/s")
			b.ReportMetric(jsMB/n, "js-MB/s")
			b.ReportMetric(goMB/jsMB, "go/js")
		})
	}
}

// BenchmarkSealOpen is the cipher alone: one message sealed and opened.
func BenchmarkSealOpen(b *testing.B) {
	for _, size := range []int{64, 1 << 10, 64 << 10} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			var key [KeySize]byte
			var hdr [HeaderSize]byte
			var tx, rx sodiumState
			tx.init(&key, &hdr)
			rx.init(&key, &hdr)
			buf := make([]byte, bufferSize(size))
			msg := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for range b.N {
				tx.seal(buf, msg, TagMessage)
				if _, err := rx.open(buf, size); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSealInParts is a long message sealed as its parts come
// (BeginMessage's path): 1 MiB in parts of 32 KiB, the most one relay
// frame carries.
func BenchmarkSealInParts(b *testing.B) {
	const size, part = 1 << 20, 32 << 10
	var key [KeySize]byte
	var hdr [HeaderSize]byte
	var tx sodiumState
	tx.init(&key, &hdr)
	msg, out := make([]byte, size), make([]byte, size)
	b.SetBytes(size)
	for b.Loop() {
		z := tx.begin(size, TagMessage)
		for off := 0; off < size; off += part {
			z.part(out[off:], msg[off:off+part])
		}
		z.finish()
	}
}
