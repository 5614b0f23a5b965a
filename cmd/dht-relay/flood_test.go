package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/interop"
	"github.com/dhtrelay/dht-relay/relay"
)

// metricInt reads the first series starting with prefix from the
// relay's metrics as an integer (0 if absent).
func metricInt(t *testing.T, metrics, prefix string) int64 {
	t.Helper()
	v, _ := strconv.ParseFloat(metricValue(t, metrics, prefix), 64)
	return int64(v)
}

// metricIntErr is metricInt for a goroutine other than the test's.
func metricIntErr(metrics, prefix string) (int64, error) {
	s, err := fetchMetric(metrics, prefix)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseFloat(s, 64)
	return int64(v), err
}

// fetchMetric returns the value of the first metric line starting with
// prefix, or "" if there is none.
func fetchMetric(metrics, prefix string) (string, error) {
	b, err := fetchBody("http://" + metrics + "/metrics")
	if err != nil {
		return "", err
	}
	return metricIn(string(b), prefix), nil
}

// metricIn is the value of the first sample in page, a metrics page in
// Prometheus text, whose line starts with prefix; "" if none does.
func metricIn(page, prefix string) string {
	for _, l := range strings.Split(page, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l[strings.LastIndexByte(l, ' ')+1:]
		}
	}
	return ""
}

// fetchBody returns the body of a GET of url.
func fetchBody(url string) ([]byte, error) {
	res, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	return io.ReadAll(res.Body)
}

// lookupFinishes sends a lookup on ic and reads until its finished
// message, failing the test if none comes within d.
func (ic *idleClient) lookupFinishes(t *testing.T, id uint32, d time.Duration) {
	t.Helper()
	var topic [32]byte
	rand.Read(topic[:])
	finished := false
	fin := uint64((&relay.Finished{}).Type())
	ic.onMessage = func(typ uint64, p []byte) {
		if typ == fin {
			if m, err := relay.Decode(relay.MessageType(typ), p); err == nil && m.(*relay.Finished).ID == id {
				finished = true
			}
		}
	}
	ic.send(&relay.Lookup{ID: id, Topic: topic})
	ic.c.SetReadDeadline(time.Now().Add(d))
	for !finished {
		frame, err := ic.f.ReadMessage()
		if err == nil {
			err = ic.mux.Receive(frame)
		}
		if err != nil {
			t.Fatalf("lookup %d never finished: %v", id, err)
		}
	}
}

// TestDHTFloodNeverFreezes: against a DHT that answers nothing, 2,048
// sessions each sending 32 lookups (within the default limits) hold more
// requests than the node's id space could; the node refuses what it
// cannot hold instead of freezing, a session still answers pings during
// the flood, a fresh lookup finishes once the flood ends, goroutines go
// back to where they were, and a second flood leaves the heap where the
// first did. (The runtime keeps the descriptor of every goroutine it ran
// at once for reuse, about a kilobyte each: a flood's peak of goroutines
// stays in the heap as a fixed cost, and a second flood with a higher
// peak adds the difference. A leak is growth beyond that.)
func TestDHTFloodNeverFreezes(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 2,048 sessions twice")
	}
	interop.Require(t)
	// The flood's sessions all come from one address, which the
	// per-address limits would otherwise stop long before the DHT.
	rel := startRelayBinary(t, silentBootstrap(t), "--metrics", "127.0.0.1:0", "--debug-addr", "127.0.0.1:0", "--allow-addresses", "127.0.0.1")
	pid := rel.cmd.Process.Pid
	probe := openIdleClient(t, rel.ws)
	heap := func() int64 { return heapAfterGC(t, rel) }
	gs := func() int64 { return metricInt(t, rel.metrics, "go_goroutines ") }
	baseG := gs()
	t.Logf("baseline: %d goroutines, heap %d MB, RSS %d MB", baseG, heap()>>20, rss(t, pid)>>20)

	// perGoroutine is what the runtime keeps of each goroutine it ran
	// at once, with room: it measured 0.9-1.0 KB.
	const perGoroutine = 2 << 10
	var heaps, peaks []int64
	for round := range 2 {
		start := time.Now()
		stop := make(chan struct{})
		peak := make(chan int64, 1)
		go func() { // the flood's peak of goroutines
			p := int64(0)
			for {
				select {
				case <-stop:
					peak <- p
					return
				case <-time.After(20 * time.Millisecond):
				}
				if g, err := metricIntErr(rel.metrics, "go_goroutines "); err == nil {
					p = max(p, g)
				}
			}
		}()
		flood, err := floodLookups(rel.ws, 2048, 32)
		if err != nil {
			t.Fatalf("a flooding session: %v", err)
		}
		probe.ping(t) // the worker still handles frames
		held := metricInt(t, rel.metrics, `dhtrelay_dht_requests{state="held"`)
		refused := metricInt(t, rel.metrics, "dhtrelay_dht_refused_total ")
		t.Logf("flood %d, %v: the node holds %d requests and refused %d in all; %d goroutines, heap %d MB, RSS %d MB",
			round+1, time.Since(start).Round(time.Millisecond), held, refused, gs(), heap()>>20, rss(t, pid)>>20)
		if refused == 0 {
			t.Error("no request was refused although the flood holds more than the node may")
		}
		for _, ic := range flood {
			ic.c.Close()
		}
		probe.lookupFinishes(t, uint32(round+1), time.Minute)

		deadline := time.Now().Add(time.Minute)
		for gs() > baseG+20 {
			if time.Now().After(deadline) {
				t.Fatalf("after flood %d: %d goroutines (baseline %d)", round+1, gs(), baseG)
			}
			time.Sleep(200 * time.Millisecond)
		}
		close(stop)
		peaks = append(peaks, max(<-peak, baseG))
		h := heap()
		heaps = append(heaps, h)
		t.Logf("after flood %d, %v: %d goroutines (peak %d), heap %d MB, RSS %d MB", round+1, time.Since(start).Round(time.Millisecond), gs(), peaks[round], h>>20, rss(t, pid)>>20)
	}
	kept := perGoroutine * max(0, peaks[1]-peaks[0])
	if heaps[1] > heaps[0]+kept+8<<20 {
		t.Fatalf("the heap grew from flood to flood by more than the runtime keeps of the goroutines: %d MB after the first, %d MB after the second (peaks %d and %d goroutines)",
			heaps[0]>>20, heaps[1]>>20, peaks[0], peaks[1])
	}
}

// floodLookups opens n sessions on ws, each sending k lookups of random
// topics without reading.
func floodLookups(ws string, n, k int) ([]*idleClient, error) {
	var mu sync.Mutex
	var flood []*idleClient
	var failed error
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ic, err := dialIdleClient(ws)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = err
				return
			}
			flood = append(flood, ic)
			for id := range uint32(k) {
				var topic [32]byte
				rand.Read(topic[:])
				ic.send(&relay.Lookup{ID: id + 1, Topic: topic})
			}
		})
	}
	wg.Wait()
	if failed != nil {
		for _, ic := range flood {
			ic.c.Close()
		}
		return nil, failed
	}
	return flood, nil
}

// silentBootstrap is the address of a UDP socket on loopback that reads
// and answers nothing, until the test ends: a DHT that does not answer.
func silentBootstrap(t testing.TB) string {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := c.ReadFromUDP(buf); err != nil {
				return
			}
		}
	}()
	return c.LocalAddr().String()
}

// metricValue returns the value of the first metric line starting with
// prefix, or "" if there is none.
func metricValue(t *testing.T, metrics, prefix string) string {
	t.Helper()
	v, err := fetchMetric(metrics, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// errorCountAt reads dhtrelay_errors_total of kind from the metrics at
// the address metrics.
func errorCountAt(t *testing.T, metrics, kind string) int {
	t.Helper()
	n, _ := strconv.Atoi(metricValue(t, metrics, fmt.Sprintf(`dhtrelay_errors_total{kind="%s"`, kind)))
	return n
}
