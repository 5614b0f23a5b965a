package hyperdht

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/interop"
)

// echoThroughput writes total bytes on c while reading the echo back and
// returns MB/s.
func echoThroughput(tb testing.TB, c *Conn, total int) float64 {
	start := time.Now()
	go func() {
		buf := make([]byte, 65536)
		for sent := 0; sent < total; sent += len(buf) {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	if _, err := io.CopyN(io.Discard, c, int64(total)); err != nil {
		tb.Fatal(err)
	}
	return float64(total) / time.Since(start).Seconds() / 1e6
}

// BenchmarkVersusJS measures connection setup (Connect until the stream is
// usable) and echo throughput for Go to Go, Go to JS and JS to JS, in one
// run on a loopback testnet, 32 MiB echoed per figure.
func BenchmarkVersusJS(b *testing.B) {
	const total = 32 << 20
	js, n := startMixed(b)
	bootstrap := n.DHT().ServerSocket().LocalAddr()
	var ggMs, ggMB, gjMs, gjMB, jjMs, jjMB float64
	for range b.N {
		// Go to Go.
		_, skp := seedKeyPair()
		srv, err := n.Listen(context.Background(), ServerConfig{KeyPair: &skp})
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			for {
				c, err := srv.Accept(context.Background())
				if err != nil {
					return
				}
				go io.Copy(c, c)
			}
		}()
		m := joinNode(b, bootstrap)
		_, ckp := seedKeyPair()
		start := time.Now()
		c, err := m.Connect(context.Background(), skp.Public, ClientConfig{KeyPair: &ckp})
		if err != nil {
			b.Fatal(err)
		}
		ggMs += float64(time.Since(start).Microseconds()) / 1000
		ggMB += echoThroughput(b, c, total)
		c.Close()
		srv.Close()

		// Go to JS.
		seed, jkp := seedKeyPair()
		var ok struct{ OK bool }
		js.do(b, &ok, "listen", hex.EncodeToString(seed[:]))
		start = time.Now()
		c, err = m.Connect(context.Background(), jkp.Public, ClientConfig{KeyPair: &ckp})
		if err != nil {
			b.Fatal(err)
		}
		gjMs += float64(time.Since(start).Microseconds()) / 1000
		gjMB += echoThroughput(b, c, total)
		if testing.Verbose() {
			b.Logf("go-js stream: %+v mtu %d", c.Raw.Stats(), c.Raw.MTU())
		}
		c.Close()
		m.Close()

		// JS to JS.
		var r struct {
			ConnectMs float64
			Mbps      float64
		}
		if err := json.Unmarshal(interop.Run(b, nil, "hyperdht-bench.js", bootstrap.String(), strconv.Itoa(total)), &r); err != nil {
			b.Fatal(err)
		}
		jjMs += r.ConnectMs
		jjMB += r.Mbps
	}
	k := float64(b.N)
	b.ReportMetric(ggMs/k, "go-go-connect-ms")
	b.ReportMetric(gjMs/k, "go-js-connect-ms")
	b.ReportMetric(jjMs/k, "js-js-connect-ms")
	b.ReportMetric(ggMB/k, "go-go-MB/s")
	b.ReportMetric(gjMB/k, "go-js-MB/s")
	b.ReportMetric(jjMB/k, "js-js-MB/s")
	b.ReportMetric(ggMB/jjMB, "go-go/js-js")
}
