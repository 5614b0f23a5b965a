package main

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/dhtrelay/dht-relay/internal/interop"
	"github.com/dhtrelay/dht-relay/internal/natstest"
	"github.com/dhtrelay/dht-relay/noise"
)

// startProcess runs a built binary, with env added to its environment,
// and returns its first output line.
func startProcess(t *testing.T, env []string, bin string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	// Stopped at once, not drained over --drain's default, unless env says.
	cmd.Env = append(append(os.Environ(), "DHTRELAY_DRAIN=0"), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	lines := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		lines <- strings.TrimSpace(l)
	}()
	select {
	case l := <-lines:
		if l == "" {
			t.Fatalf("%s exited before it was ready", bin)
		}
		return cmd, l
	case <-time.After(60 * time.Second):
		t.Fatalf("%s not ready", bin)
	}
	return nil, ""
}

func buildCommands(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, c := range []string{"edge", "dhtworker"} {
		b, err := exec.Command("go", "build", "-o", filepath.Join(dir, c), "../"+c).CombinedOutput()
		if err != nil {
			t.Fatalf("build %s: %v\n%s", c, err, b)
		}
	}
	return dir
}

// startNATS runs a NATS server on loopback for the test and returns its
// client URL, and a function that stops it and starts a fresh one on the
// same port after down (a NATS restart: its subscriptions and queued
// messages are gone).
func startNATS(t *testing.T) (string, func(down time.Duration)) {
	t.Helper()
	var mu sync.Mutex
	ns := natstest.Run(t, natsserver.Options{})
	port := ns.Addr().(*net.TCPAddr).Port
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		ns.Shutdown()
	})
	restart := func(down time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		ns.Shutdown()
		ns.WaitForShutdown()
		time.Sleep(down)
		ns = natstest.Run(t, natsserver.Options{Port: port})
	}
	return ns.ClientURL(), restart
}

// startJSEcho starts a JS testnet with a JS echo server on the key of
// seedHex; it returns the testnet's bootstrap address and the server's key.
func startJSEcho(t *testing.T, seedHex string) (string, [32]byte) {
	t.Helper()
	_, boot, key := startJSEchoPeer(t, seedHex)
	return boot, key
}

// startJSEchoPeer is startJSEcho that also returns the JS node, for more
// commands.
func startJSEchoPeer(t *testing.T, seedHex string) (*interop.Peer, string, [32]byte) {
	t.Helper()
	peer, boot := interop.StartTestnet(t)
	interop.RequireOK(t, "js listen", peer.Do("listen", seedHex))
	var seed [32]byte
	hex.Decode(seed[:], []byte(seedHex))
	return peer, boot, noise.KeyPairFromSeed(seed).Public
}

// TestSplitProcesses runs an edge and a worker as separate processes over
// a NATS server: the unchanged JS client connects through the edge to a JS
// echo server on a JS testnet, custodial and not.
func TestSplitProcesses(t *testing.T) {
	interop.Require(t)
	boot, echoKey := startJSEcho(t, strings.Repeat("ab", 32))
	c := newCluster(t, boot, "")
	c.worker("w1")
	ws := c.edge("e1", 1)
	for _, mode := range []string{"custodial", "noncustodial"} {
		u := interop.Start(t, "relay-user.js", "ws", ws, mode, strings.Repeat("cd", 32))
		if l, err := u.ReadLineWithin(30 * time.Second); err != nil || !strings.Contains(l, "ready") {
			t.Fatalf("%s: client not ready: %s %v", mode, l, err)
		}
		fmt.Fprintf(u.Stdin, `{"cmd":"connect","key":"%s","bytes":1048576}`+"\n", hex.EncodeToString(echoKey[:]))
		if l, err := u.ReadLineWithin(60 * time.Second); err != nil || !strings.Contains(l, `"ok":true`) {
			t.Fatalf("%s: echo through the split relay: %s %v", mode, l, err)
		}
	}
}
