package main

import (
	"context"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/interop"
	"github.com/dhtrelay/dht-relay/internal/loadgen"
)

// openFiles is how many descriptors pid holds.
func openFiles(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Skipf("no /proc to count descriptors: %v", err)
	}
	return len(fds)
}

// TestChurnLeavesNothing: thousands of sessions opened and closed, from
// addresses spread over 127.0.0.0/8, leave the relay's goroutines and
// descriptors where they were and its live heap within 2% and a quarter
// of a megabyte (it moved by -60 to +80 KB in twelve runs without a
// leak): 4,000 sessions that each left 80 bytes behind would be caught.
func TestChurnLeavesNothing(t *testing.T) {
	interop.Require(t)
	if testing.Short() {
		t.Skip("opens 4,000 sessions")
	}
	_, boot := interop.StartTestnet(t)
	rel := startRelayBinary(t, boot, "--metrics", "127.0.0.1:0", "--debug-addr", "127.0.0.1:0", "--allow-addresses", "127.0.0.0/8")
	pid := rel.cmd.Process.Pid
	src := loadgen.NewSources(netip.MustParsePrefix("127.0.0.0/8"), 50)
	ctx := context.Background()
	cycles := 4000
	if n, err := strconv.Atoi(os.Getenv("CHURN_CYCLES")); err == nil {
		cycles = n // a longer run, by hand
	}
	// A first round as large as the measured one fills the pools, caches
	// and tables that are meant to stay, to the size that round needs.
	if failed := loadgen.Cycles(ctx, rel.ws, cycles, 128, src); failed > 0 {
		t.Fatalf("%d of %d sessions failed to open in the first round", failed, cycles)
	}
	// settle waits until goroutines and descriptors are back within slack
	// of g and fd, or 30 s have passed, and returns them.
	settle := func(g int64, fd int, slack int) (int64, int) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			gn, fdn := goroutines(t, rel), openFiles(t, pid)
			if (gn <= g+int64(slack) && fdn <= fd+slack) || time.Now().After(deadline) {
				return gn, fdn
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	time.Sleep(time.Second) // the first round's sessions finish closing
	g0, fd0 := goroutines(t, rel), openFiles(t, pid)
	heap0, rss0 := liveAfterGC(t, rel), rss(t, pid)
	start := time.Now()
	if failed := loadgen.Cycles(ctx, rel.ws, cycles, 128, src); failed > 0 {
		t.Fatalf("%d of %d sessions failed to open", failed, cycles)
	}
	took := time.Since(start)
	g1, fd1 := settle(g0, fd0, 2)
	heap1, rss1 := liveAfterGC(t, rel), rss(t, pid)
	t.Logf("%d sessions opened and closed in %v: goroutines %d -> %d, descriptors %d -> %d, live heap %d -> %d KB, RSS %d -> %d MB",
		cycles, took.Round(time.Millisecond), g0, g1, fd0, fd1, heap0>>10, heap1>>10, rss0>>20, rss1>>20)
	if g1 > g0+2 {
		t.Errorf("goroutines %d after the churn, %d before", g1, g0)
	}
	if fd1 > fd0+2 {
		t.Errorf("descriptors %d after the churn, %d before", fd1, fd0)
	}
	if heap1 > heap0+heap0/50+256<<10 {
		t.Errorf("live heap %d KB after the churn, %d KB before", heap1>>10, heap0>>10)
	}
}

// TestLoadGeneratorWorks: the load generator's working share announces,
// finds its own announce, and echoes through a JS peer, through the relay,
// with no failure.
func TestLoadGeneratorWorks(t *testing.T) {
	interop.Require(t)
	peer, boot := interop.StartTestnet(t)
	echo := interop.RandomSeed()
	interop.RequireOK(t, "js listen", peer.Do("listen", echo))
	rel := startRelayBinary(t, boot)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	var stats loadgen.WorkStats
	w := loadgen.Work{Sessions: 4, Echo: keyOf(echo).Public, EchoBytes: 16 << 10, Every: 500 * time.Millisecond}
	loadgen.RunWork(ctx, rel.ws, w, loadgen.NewSources(netip.Prefix{}, 1), &stats)
	for _, op := range []string{"announce", "lookup", "connect and echo"} {
		if stats.Done(op) < w.Sessions {
			t.Errorf("%s done %d times by %d sessions", op, stats.Done(op), w.Sessions)
		}
	}
	if f := stats.Failures(); len(f) > 0 {
		t.Errorf("failures: %v", f)
	}
}
