package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/interop"
	"github.com/dhtrelay/dht-relay/noise"
)

// relayProc is dht-relay running in this process, as its main runs it.
type relayProc struct {
	ws, tcp string // ws://… and host:port
	metrics string // host:port, with --metrics
	stop    context.CancelFunc
	done    chan error
}

func startRelay(t *testing.T, args ...string) *relayProc {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	p := &relayProc{stop: stop, done: make(chan error, 1)}
	go func() {
		err := run(ctx, append([]string{"--host", "127.0.0.1", "--port", "0", "--tcp-port", "0", "--log-level", "warn"}, args...), pw, testLog{t})
		pw.CloseWithError(fmt.Errorf("relay exited: %v", err))
		p.done <- err
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("relay did not get ready: %v", err)
	}
	go io.Copy(io.Discard, pr)
	fields := strings.Fields(line)
	for i, f := range fields {
		switch {
		case f == "metrics" && i+1 < len(fields):
			p.metrics = fields[i+1]
		case strings.HasPrefix(f, "ws://"):
			p.ws = f
		case strings.HasPrefix(f, "tcp://"):
			p.tcp = strings.TrimPrefix(f, "tcp://")
		}
	}
	if p.ws == "" || p.tcp == "" {
		t.Fatalf("ready line without both URLs: %q", line)
	}
	t.Cleanup(func() {
		stop()
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			t.Error("relay did not shut down")
		}
	})
	return p
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Logf("relay: %s", strings.TrimSpace(string(p)))
	return len(p), nil
}

// jsPeer is hyperdht-peer.js: a JS testnet and a JS node on it.
type jsPeer struct {
	t testing.TB
	p *interop.Process
}

func startTestnet(t testing.TB) (*jsPeer, string) {
	p := interop.Start(t, "hyperdht-peer.js", "10")
	line, err := p.ReadLineWithin(60 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var boot struct{ Bootstrap string }
	if err := json.Unmarshal([]byte(line), &boot); err != nil {
		t.Fatalf("testnet: %v: %s", err, line)
	}
	return &jsPeer{t: t, p: p}, boot.Bootstrap
}

func (j *jsPeer) do(cmd ...string) map[string]any {
	j.t.Helper()
	fmt.Fprintln(j.p.Stdin, strings.Join(cmd, " "))
	line, err := j.p.ReadLineWithin(90 * time.Second)
	if err != nil {
		j.t.Fatal(err)
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		j.t.Fatalf("js peer: %v: %s", err, line)
	}
	return r
}

// user is relay-user.js: the unchanged JS relay client.
type user struct {
	t testing.TB
	p *interop.Process
}

func startUser(t testing.TB, transport, where, mode string) *user {
	t.Helper()
	u := &user{t: t, p: interop.Start(t, "relay-user.js", transport, where, mode, randomSeed())}
	if r := u.read(); r["ready"] != true {
		t.Fatalf("relay client not ready: %v", r)
	}
	return u
}

func (u *user) read() map[string]any {
	u.t.Helper()
	line, err := u.p.ReadLineWithin(90 * time.Second)
	if err != nil {
		u.t.Fatal(err)
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		u.t.Fatalf("relay client: %v: %s", err, line)
	}
	return r
}

func (u *user) do(cmd map[string]any) map[string]any {
	u.t.Helper()
	b, _ := json.Marshal(cmd)
	fmt.Fprintln(u.p.Stdin, string(b))
	return u.read()
}

func randomSeed() string {
	var b [32]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func publicKey(seedHex string) string {
	var seed [32]byte
	hex.Decode(seed[:], []byte(seedHex))
	kp := noise.KeyPairFromSeed(seed)
	return hex.EncodeToString(kp.Public[:])
}

func contains(list any, s string) bool {
	l, _ := list.([]any)
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

func requireOK(t testing.TB, what string, r map[string]any) {
	t.Helper()
	if r["ok"] != true {
		t.Fatalf("%s: %v", what, r)
	}
}

// TestJSClient runs the unchanged JS client against dht-relay on a JS
// testnet, over WebSocket and TCP, custodial and not: connections to a JS
// server (8 MB echo, 32 streams at once, a missing key), a relayed server
// that a JS peer connects to (its firewall allowing and denying), lookup,
// announce and unannounce seen from JS, and a Hyperswarm on the relayed
// node meeting a JS one.
func TestJSClient(t *testing.T) {
	interop.Require(t)
	peer, boot := startTestnet(t)
	relay := startRelay(t, "--bootstrap", boot)

	echoSeed := randomSeed()
	requireOK(t, "js listen", peer.do("listen", echoSeed))
	echoKey := publicKey(echoSeed)

	for _, transport := range []string{"ws", "tcp"} {
		for _, mode := range []string{"custodial", "noncustodial"} {
			t.Run(transport+"/"+mode, func(t *testing.T) {
				where := relay.ws
				if transport == "tcp" {
					where = relay.tcp
				}
				u := startUser(t, transport, where, mode)

				r := u.do(map[string]any{"cmd": "connect", "key": echoKey, "bytes": 8 << 20})
				requireOK(t, "8 MB echo", r)
				t.Logf("8 MB echo: connect %.1f ms, %.1f MB/s", r["ms"], r["mbps"])

				requireOK(t, "32 streams", u.do(map[string]any{"cmd": "streams", "key": echoKey, "n": 32, "bytes": 64 << 10}))

				r = u.do(map[string]any{"cmd": "connect", "key": publicKey(randomSeed()), "bytes": 1})
				if e, _ := r["error"].(string); e != "PEER_NOT_FOUND: Peer not found" {
					t.Fatalf("connect to a missing key: %v", r)
				}

				allowSeed, denySeed := randomSeed(), randomSeed()
				requireOK(t, "listen", u.do(map[string]any{"cmd": "listen", "seed": allowSeed}))
				requireOK(t, "listen (deny)", u.do(map[string]any{"cmd": "listen", "seed": denySeed, "deny": true}))
				requireOK(t, "js echo through a relayed server", peer.do("echo", publicKey(allowSeed), "1048576"))
				// A denied JS client waits out its handshake timeout; it
				// runs alongside the rest.
				denied := interop.Start(t, "hyperdht-client.js", boot, publicKey(denySeed), "1024")
				defer func() {
					line, err := denied.ReadLineWithin(90 * time.Second)
					if err != nil {
						t.Fatal(err)
					}
					if !strings.Contains(line, `"error"`) {
						t.Fatalf("a denying firewall let a connection through: %s", line)
					}
				}()

				topic, jsSeed := randomSeed(), randomSeed()
				requireOK(t, "js announce", peer.do("announce", topic, jsSeed))
				if r := u.do(map[string]any{"cmd": "lookup", "topic": topic}); !contains(r["peers"], publicKey(jsSeed)) {
					t.Fatalf("relayed lookup misses the JS announcement: %v", r)
				}

				topic2, seed2 := randomSeed(), randomSeed()
				requireOK(t, "announce", u.do(map[string]any{"cmd": "announce", "topic": topic2, "seed": seed2}))
				if r := peer.do("lookup", topic2); !contains(r["peers"], publicKey(seed2)) {
					t.Fatalf("JS lookup misses the relayed announcement: %v", r)
				}
				requireOK(t, "unannounce", u.do(map[string]any{"cmd": "unannounce", "topic": topic2, "seed": seed2}))
				if r := peer.do("lookup", topic2); contains(r["peers"], publicKey(seed2)) {
					t.Fatalf("JS lookup still finds the unannounced key: %v", r)
				}
				requireOK(t, "close servers", u.do(map[string]any{"cmd": "close"}))

				topic3 := randomSeed()
				text := "hello from " + transport + "/" + mode
				requireOK(t, "swarm", u.do(map[string]any{"cmd": "swarm", "topic": topic3, "text": text}))
				swarm := interop.Start(t, "hyperswarm-peer.js", boot, topic3)
				if _, err := swarm.ReadLineWithin(60 * time.Second); err != nil { // joined
					t.Fatal(err)
				}
				if r := u.read(); r["swarm"] != "hello from js" {
					t.Fatalf("relayed swarm got %v", r)
				}
				line, err := swarm.ReadLineWithin(60 * time.Second)
				if err != nil || !strings.Contains(line, text) {
					t.Fatalf("JS swarm got %q (%v)", line, err)
				}
			})
		}
	}
}
