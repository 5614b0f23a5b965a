package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/dhtrelay/dht-relay/internal/await"
	"github.com/dhtrelay/dht-relay/internal/interop"
	"github.com/dhtrelay/dht-relay/relay"
)

// relayBinary is dht-relay started as its own process, for what needs a
// process: killing it, signalling it, reading its memory.
type relayBinary struct {
	cmd                     *exec.Cmd
	ws, tcp, metrics, debug string
}

// startRelayBinary builds and starts dht-relay on the testnet boot, with
// extra flags after the usual ones.
func startRelayBinary(t testing.TB, boot string, extra ...string) *relayBinary {
	t.Helper()
	return startRelayBinaryIn(t, nil, boot, extra...)
}

// startRelayBinaryIn is startRelayBinary run through the command wrap
// (prlimit and its options, say), if any.
func startRelayBinaryIn(t testing.TB, wrap []string, boot string, extra ...string) *relayBinary {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "dht-relay")
	if b, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	args := slices.Concat(wrap, []string{bin, "--host", "127.0.0.1", "--port", "0", "--tcp-port", "0", "--bootstrap", boot, "--log-level", "warn", "--drain", "0", "--dht-host", "127.0.0.1"}, extra)
	cmd := exec.Command(args[0], args[1:]...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &relayBinary{cmd: cmd}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("relay not ready: %v", err)
	}
	fields := strings.Fields(line)
	for i, f := range fields {
		if f == "metrics" && i+1 < len(fields) {
			r.metrics = fields[i+1]
		}
		if f == "debug" && i+1 < len(fields) {
			r.debug = fields[i+1]
		}
		if strings.HasPrefix(f, "ws://") {
			r.ws = f
		}
		if strings.HasPrefix(f, "tcp://") {
			r.tcp = strings.TrimPrefix(f, "tcp://")
		}
	}
	return r
}

// rss is the process's resident memory in bytes; the test fails if the
// process has exited, and is skipped where there is no /proc.
func rss(t testing.TB, pid int) int64 {
	n, ok := procRSS(pid)
	if !ok {
		procGone(t, pid)
	}
	return n
}

// procRSS is pid's resident memory in bytes; false once it has exited.
func procRSS(pid int) (int64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			kb, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return kb << 10, true
		}
	}
	return 0, false // a zombie has no VmRSS
}

// procGone skips where there is no /proc to read, else fails: pid exited.
func procGone(t testing.TB, pid int) {
	t.Helper()
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skipf("no /proc: %v", err)
	}
	t.Fatalf("process %d has exited", pid)
}

// TestTCPAcceptSurvivesRunningOutOfFiles: with its file descriptors used
// up by connections that never finish their handshake, the relay's TCP
// listener fails to accept; once they are gone it takes clients again.
func TestTCPAcceptSurvivesRunningOutOfFiles(t *testing.T) {
	interop.Require(t)
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("needs prlimit (util-linux) to start the relay with few file descriptors")
	}
	peer, boot := interop.StartTestnet(t)
	echoSeed := interop.RandomSeed()
	interop.RequireOK(t, "js listen", peer.Do("listen", echoSeed))
	const files = 128
	rel := startRelayBinaryIn(t, []string{prlimit, fmt.Sprintf("--nofile=%d:%d", files, files)}, boot)
	var hogs []net.Conn
	for range files {
		c, err := net.Dial("tcp", rel.tcp)
		if err != nil {
			t.Fatal(err)
		}
		hogs = append(hogs, c)
	}
	// The last of them wait in the kernel's backlog: the relay has no
	// descriptor left to take them with.
	time.Sleep(time.Second)
	for _, c := range hogs {
		c.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var c *relay.Client
	for c == nil {
		tr, err := relay.DialTCP(ctx, rel.tcp)
		if err == nil {
			c, err = relay.NewClient(tr, relay.ClientConfig{KeyPair: keyOf(interop.RandomSeed()), Custodial: true})
		}
		if ctx.Err() != nil {
			t.Fatalf("the TCP listener takes no client after running out of files: %v", err)
		}
	}
	defer c.Close()
	if err := echoOver(t, c, keyOf(echoSeed).Public, 1<<10); err != nil {
		t.Fatal(err)
	}
}

// TestGarbageClosesOneSession: random bytes on one WebSocket close that
// session; another client on the same relay keeps working.
func TestGarbageClosesOneSession(t *testing.T) {
	interop.Require(t)
	peer, boot := interop.StartTestnet(t)
	relay := startRelay(t, "--bootstrap", boot)
	echoSeed := interop.RandomSeed()
	interop.RequireOK(t, "js listen", peer.Do("listen", echoSeed))
	good := interop.StartUser(t, "ws", relay.ws, "custodial")

	// Junk that happens to parse as harmless frames leaves the session
	// waiting for its handshake, which the handshake timeout ends: every
	// junk session is closed within it.
	closed := make(chan error, 20)
	for i := range 20 {
		go func() {
			c, _, err := websocket.DefaultDialer.Dial(relay.ws, nil)
			if err != nil {
				closed <- err
				return
			}
			defer c.Close()
			junk := make([]byte, 1+i*97)
			rand.Read(junk)
			c.WriteMessage(websocket.BinaryMessage, junk)
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
						closed <- fmt.Errorf("junk session %d still open after 20 s", i)
						return
					}
					closed <- nil
					return
				}
			}
		}()
	}
	for range 20 {
		if err := <-closed; err != nil {
			t.Error(err)
		}
	}
	interop.RequireOK(t, "echo after garbage elsewhere", good.Do(map[string]any{"cmd": "connect", "key": interop.PublicKey(echoSeed), "bytes": 1 << 20}))
}

// TestRelayKilled: killing the relay surfaces on the client as a closed
// relay stream within seconds.
func TestRelayKilled(t *testing.T) {
	interop.Require(t)
	_, boot := interop.StartTestnet(t)
	relay := startRelayBinary(t, boot)
	u := interop.StartUser(t, "ws", relay.ws, "custodial")
	killed := time.Now()
	relay.cmd.Process.Signal(syscall.SIGKILL)
	if r := u.Read(); r["closed"] != true {
		t.Fatalf("after kill: %v", r)
	}
	if d := time.Since(killed); d > 5*time.Second {
		t.Fatalf("the client saw the relay gone after %v", d)
	}
}

// TestGracefulShutdown: on SIGTERM the relay closes its clients and
// unannounces their servers before it exits.
func TestGracefulShutdown(t *testing.T) {
	interop.Require(t)
	peer, boot := interop.StartTestnet(t)
	relay := startRelayBinary(t, boot)
	u := interop.StartUser(t, "ws", relay.ws, "custodial")
	seed := interop.RandomSeed()
	interop.RequireOK(t, "listen", u.Do(map[string]any{"cmd": "listen", "seed": seed}))
	if r := peer.Do("findPeer", interop.PublicKey(seed)); r["found"] != true {
		t.Fatalf("the relayed server is not announced: %v", r)
	}
	relay.cmd.Process.Signal(syscall.SIGTERM)
	if r := u.Read(); r["closed"] != true {
		t.Fatalf("after SIGTERM: %v", r)
	}
	done := make(chan error, 1)
	go func() { done <- relay.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("relay exit: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("relay did not exit")
	}
	if r := peer.Do("findPeer", interop.PublicKey(seed)); r["found"] == true {
		t.Fatal("the relayed server is still announced after shutdown")
	}
}

// slowReaderBound is the most the relay's memory may grow while a client
// holds back a stream a peer is filling: one stream's credit on the edge
// and the worker's UDX receive buffer, with room for the Go runtime.
const slowReaderBound = 64 << 20

// TestSlowReader: a client that stops reading while a peer sends 1 GB
// keeps the relay's memory under slowReaderBound; the sender waits, and
// once the client reads again every byte arrives.
func TestSlowReader(t *testing.T) {
	interop.Require(t)
	if testing.Short() {
		t.Skip("sends 1 GB")
	}
	peer, boot := interop.StartTestnet(t)
	relay := startRelayBinary(t, boot)
	seed := interop.RandomSeed()
	const total = 1 << 30
	interop.RequireOK(t, "js source", peer.Do("listenSource", seed, strconv.Itoa(total)))
	u := interop.StartUser(t, "ws", relay.ws, "custodial")
	base := rss(t, relay.cmd.Process.Pid)
	u.Send(map[string]any{"cmd": "sink", "key": interop.PublicKey(seed), "pauseMs": 8000})
	peak := base
	deadline := time.Now().Add(7 * time.Second)
	for time.Now().Before(deadline) {
		peak = max(peak, rss(t, relay.cmd.Process.Pid))
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("relay memory: %d MB before, peak %d MB while the client does not read", base>>20, peak>>20)
	if peak-base > slowReaderBound {
		t.Errorf("relay grew by %d MB behind a client that does not read", (peak-base)>>20)
	}
	line, err := u.ReadLineWithin(5 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var r map[string]any
	json.Unmarshal([]byte(line), &r)
	if r["ok"] != true || r["bytes"] != float64(total) {
		t.Fatalf("after the pause: %s", line)
	}
}

// TestDrain: on SIGTERM the relay fails /readyz at once, refuses new
// sessions, and ends those open spread over --drain rather than all at
// once; then it exits. The profiler is not on the metrics address.
func TestDrain(t *testing.T) {
	interop.Require(t)
	_, boot := interop.StartTestnet(t)
	const drain, n = 4 * time.Second, 40
	rel := startRelayBinary(t, boot, "--metrics", "127.0.0.1:0", "--allow-addresses", "127.0.0.1", "--drain", drain.String())
	res, err := http.Get("http://" + rel.metrics + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("the profiler answers on the metrics address: %s", res.Status)
	}
	closed := make(chan time.Time, n)
	for range n {
		ic := openIdleClient(t, rel.ws)
		go func() {
			ic.c.SetReadDeadline(time.Time{})
			for {
				if _, err := ic.f.ReadMessage(); err != nil {
					closed <- time.Now()
					return
				}
			}
		}()
	}
	start := time.Now()
	rel.cmd.Process.Signal(syscall.SIGTERM)
	for {
		res, err := http.Get("http://" + rel.metrics + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusServiceUnavailable {
			break
		}
		if time.Since(start) > drain/2 {
			t.Fatalf("/readyz still %s while draining", res.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, res, err := websocket.DefaultDialer.Dial(rel.ws, nil); err == nil || res == nil || res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a new session while draining: %v", err)
	}
	var first, last time.Time
	for i := range n {
		select {
		case at := <-closed:
			if i == 0 {
				first = at
			}
			last = at
		case <-time.After(drain + 20*time.Second):
			t.Fatalf("%d of %d sessions ended", i, n)
		}
	}
	// Spread over the drain, not at once; a slow machine only spreads
	// them further.
	if spread := last.Sub(first); spread < drain/2 {
		t.Fatalf("%d sessions ended within %v of a %v drain", n, spread, drain)
	}
	done := make(chan error, 1)
	go func() { done <- rel.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("relay exit: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("relay did not exit after the drain")
	}
}

// TestStatusPage: a plain GET of / says what the relay is and that it
// takes sessions; other paths are not found.
func TestStatusPage(t *testing.T) {
	interop.Require(t)
	_, boot := interop.StartTestnet(t)
	rel := startRelay(t, "--bootstrap", boot, "--contact", "abuse@relay.example")
	base := "http" + strings.TrimPrefix(rel.ws, "ws")
	res, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "accepting sessions") || !strings.Contains(string(body), "abuse@relay.example") {
		t.Fatalf("/: %s %q", res.Status, body)
	}
	res, err = http.Get(base + "/nothing")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("/nothing: %s", res.Status)
	}
}

// TestProcessorsFollowTheLoad: the binary runs Go on one processor while
// it is idle (package procs), and GOMAXPROCS in its environment fixes the
// count instead.
func TestProcessorsFollowTheLoad(t *testing.T) {
	interop.Require(t)
	if runtime.NumCPU() < 2 {
		t.Skip("one CPU: the runtime chooses one processor and procs has nothing to follow")
	}
	_, boot := interop.StartTestnet(t)
	procs := func(rel *relayBinary) int64 { return metricInt(t, rel.metrics, "go_sched_gomaxprocs_threads ") }
	rel := startRelayBinary(t, boot, "--metrics", "127.0.0.1:0")
	if !await.Poll(15*time.Second, func() bool { return procs(rel) == 1 }) {
		t.Fatalf("an idle relay runs on %d processors, want 1", procs(rel))
	}
	t.Setenv("GOMAXPROCS", "2")
	fixed := startRelayBinary(t, boot, "--metrics", "127.0.0.1:0")
	for range 10 {
		if n := procs(fixed); n != 2 {
			t.Fatalf("with GOMAXPROCS=2 the relay runs on %d processors", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
