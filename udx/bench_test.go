package udx

import (
	"encoding/json"
	"io"
	"net/netip"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/interop"
)

type benchEnd struct {
	Port uint16 `json:"port"`
	ID   uint32 `json:"id"`
}

// jsEnd starts one udx-bench.js process and returns it with its address.
func jsEnd(tb testing.TB, role string, total int) (*interop.Process, benchEnd) {
	p := interop.Start(tb, "udx-bench.js", role, strconv.Itoa(total))
	line, err := p.ReadLine()
	if err != nil {
		tb.Fatal(err)
	}
	var e benchEnd
	json.Unmarshal([]byte(line), &e)
	return p, e
}

func introduce(tb testing.TB, p *interop.Process, e benchEnd) {
	b, _ := json.Marshal(e)
	if _, err := io.WriteString(p.Stdin, string(b)+"\n"); err != nil {
		tb.Fatal(err)
	}
}

func jsResult(tb testing.TB, p *interop.Process) float64 {
	line, err := p.ReadLine()
	if err != nil {
		tb.Fatal(err)
	}
	var r struct{ Mbps float64 }
	json.Unmarshal([]byte(line), &r)
	return r.Mbps
}

// goEnd makes a Go stream on its own UDX instance and socket.
func goEnd(tb testing.TB, id uint32) (*Stream, *Socket) {
	u := New()
	sock, err := u.Listen(netip.MustParseAddrPort("127.0.0.1:0"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	s, _ := u.NewStream(id)
	return s, sock
}

func lo(port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
}

func goSend(s *Stream, total int) {
	buf := make([]byte, 65536)
	for sent := 0; sent < total; sent += len(buf) {
		if _, err := s.Write(buf); err != nil {
			return
		}
	}
	s.CloseWrite()
	io.Copy(io.Discard, s)
}

// goRecv reads to EOF and returns MB/s from the first byte.
func goRecv(tb testing.TB, s *Stream) float64 {
	buf := make([]byte, 65536)
	var start time.Time
	got := 0
	for {
		n, err := s.Read(buf)
		if got == 0 && n > 0 {
			start = time.Now()
		}
		got += n
		if err == io.EOF {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
	s.CloseWrite()
	return float64(got) / time.Since(start).Seconds() / 1e6
}

func goToGo(tb testing.TB, total int) float64 {
	a, sa := goEnd(tb, 1)
	b, sb := goEnd(tb, 2)
	defer sa.Close()
	defer sb.Close()
	a.Connect(sa, 2, sb.LocalAddr())
	b.Connect(sb, 1, sa.LocalAddr())
	go goSend(a, total)
	r := goRecv(tb, b)
	if testing.Verbose() {
		tb.Logf("go-go sender %+v receiver %+v cwnd %d srtt %v", a.Stats(), b.Stats(), a.cwnd, a.srtt)
	}
	return r
}

func goToJS(tb testing.TB, total int) float64 {
	p, e := jsEnd(tb, "recv", total)
	a, sa := goEnd(tb, 1)
	defer sa.Close()
	a.Connect(sa, e.ID, lo(e.Port))
	introduce(tb, p, benchEnd{sa.LocalAddr().Port(), 1})
	go goSend(a, total)
	return jsResult(tb, p)
}

func jsToGo(tb testing.TB, total int) float64 {
	p, e := jsEnd(tb, "send", total)
	b, sb := goEnd(tb, 2)
	defer sb.Close()
	b.Connect(sb, e.ID, lo(e.Port))
	introduce(tb, p, benchEnd{sb.LocalAddr().Port(), 2})
	return goRecv(tb, b)
}

func jsToJS(tb testing.TB, total int) float64 {
	recv, er := jsEnd(tb, "recv", total)
	send, es := jsEnd(tb, "send", total)
	introduce(tb, recv, es)
	introduce(tb, send, er)
	return jsResult(tb, recv)
}

// BenchmarkVersusJS measures one-way stream throughput on loopback for Go
// to Go, Go to JS, JS to Go and JS to JS (udx-native, two processes) in the
// same run, 64 MiB per transfer, and reports each and Go-to-Go over
// JS-to-JS.
func BenchmarkVersusJS(b *testing.B) {
	const total = 64 << 20
	var gg, gj, jg, jj float64
	for range b.N {
		gg += goToGo(b, total)
		gj += goToJS(b, total)
		jg += jsToGo(b, total)
		jj += jsToJS(b, total)
	}
	n := float64(b.N)
	b.ReportMetric(gg/n, "go-go-MB/s")
	b.ReportMetric(gj/n, "go-js-MB/s")
	b.ReportMetric(jg/n, "js-go-MB/s")
	b.ReportMetric(jj/n, "js-js-MB/s")
	b.ReportMetric(gg/jj, "go-go/js-js")
}

// BenchmarkIdleStreamMemory reports the heap held per connected, idle
// stream (10,000 of them on one socket).
func BenchmarkIdleStreamMemory(b *testing.B) {
	const n = 10000
	for range b.N {
		u := New()
		sock, _ := u.Listen(netip.MustParseAddrPort("127.0.0.1:0"), nil)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		streams := make([]*Stream, n)
		for i := range streams {
			streams[i], _ = u.NewStream(uint32(i + 1))
			streams[i].Connect(sock, uint32(i+1), netip.MustParseAddrPort("127.0.0.1:9"))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/stream")
		runtime.KeepAlive(streams)
		sock.Close()
	}
}

// lossyGoToGo and lossyJSToJS run the same one-way transfer through a
// lossyProxy with the lossy impairment (3% drops, 2% duplicates, 3%
// reordered by 5-20 ms): how well congestion control and loss recovery
// hold up, this package against udx-native.
func lossyGoToGo(tb testing.TB, total int) float64 {
	a, sa := goEnd(tb, 1)
	b, sb := goEnd(tb, 2)
	defer sa.Close()
	defer sb.Close()
	p := newLossyProxy(tb, sb.LocalAddr(), lossy)
	a.Connect(sa, 2, p.A())
	b.Connect(sb, 1, p.B())
	// The receiver speaks first so the proxy knows both ends.
	b.Send([]byte("hello"))
	time.Sleep(10 * time.Millisecond)
	go goSend(a, total)
	r := goRecv(tb, b)
	if testing.Verbose() {
		tb.Logf("lossy go-go sender %+v cwnd %d floor %d srtt %v minrtt %v", a.Stats(), a.cwnd, a.rate.floor(time.Now()), a.srtt, a.rate.minRTT)
	}
	return r
}

func lossyJSToJS(tb testing.TB, total int) float64 {
	recv, er := jsEnd(tb, "recv", total)
	send, es := jsEnd(tb, "send", total)
	p := newLossyProxy(tb, lo(er.Port), lossy)
	// The receiver is told the proxy's B side, the sender its A side; the
	// receiver's first packet teaches the proxy where to send.
	introduce(tb, recv, benchEnd{p.B().Port(), es.ID})
	time.Sleep(50 * time.Millisecond)
	introduce(tb, send, benchEnd{p.A().Port(), er.ID})
	return jsResult(tb, recv)
}

// BenchmarkLossyVersusJS compares one-way throughput through the lossy
// proxy, 16 MiB per transfer.
func BenchmarkLossyVersusJS(b *testing.B) {
	const total = 16 << 20
	var gg, jj float64
	for range b.N {
		gg += lossyGoToGo(b, total)
		jj += lossyJSToJS(b, total)
	}
	n := float64(b.N)
	b.ReportMetric(gg/n, "go-go-MB/s")
	b.ReportMetric(jj/n, "js-js-MB/s")
	b.ReportMetric(gg/jj, "go-go/js-js")
}
