package interop

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/edwards25519"
)

// Peer is hyperdht-peer.js: a JS testnet and a JS node on it.
type Peer struct {
	t testing.TB
	p *Process
}

// StartTestnet starts hyperdht-peer.js: a 10-node JS testnet and a JS
// node on it that takes commands. It returns the node and the testnet's
// bootstrap address.
func StartTestnet(t testing.TB) (*Peer, string) {
	p := Start(t, "hyperdht-peer.js", "10")
	line, err := p.ReadLineWithin(60 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var boot struct{ Bootstrap string }
	if err := json.Unmarshal([]byte(line), &boot); err != nil {
		t.Fatalf("testnet: %v: %s", err, line)
	}
	return &Peer{t: t, p: p}, boot.Bootstrap
}

// Pid is the node's process id: what it spends is read from it.
func (j *Peer) Pid() int { return j.p.Pid() }

// Do sends the node a command and returns its JSON answer.
func (j *Peer) Do(cmd ...string) map[string]any {
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

// User is relay-user.js: the unchanged JS relay client.
type User struct {
	t testing.TB
	p *Process
}

// StartUser starts relay-user.js on a relay (transport ws or tcp, mode
// custodial or noncustodial) with a random key.
func StartUser(t testing.TB, transport, where, mode string) *User {
	t.Helper()
	u := &User{t: t, p: Start(t, "relay-user.js", transport, where, mode, RandomSeed())}
	if r := u.Read(); r["ready"] != true {
		t.Fatalf("relay client not ready: %v", r)
	}
	return u
}

// Read returns the client's next JSON line.
func (u *User) Read() map[string]any {
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

// Do sends the client a command and returns its answer.
func (u *User) Do(cmd map[string]any) map[string]any {
	u.t.Helper()
	u.Send(cmd)
	return u.Read()
}

// Try sends the client a command and returns its answer, or the error
// that kept it from answering (it exited, or said nothing within 90 s).
func (u *User) Try(cmd map[string]any) (map[string]any, error) {
	u.Send(cmd)
	line, err := u.p.ReadLineWithin(90 * time.Second)
	if err != nil {
		return nil, err
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		return nil, fmt.Errorf("relay client: %w: %s", err, line)
	}
	return r, nil
}

// Send sends the client a command without waiting for its answer.
func (u *User) Send(cmd map[string]any) {
	b, _ := json.Marshal(cmd)
	fmt.Fprintln(u.p.Stdin, string(b))
}

// Pid is the client's process id.
func (u *User) Pid() int { return u.p.Pid() }

// ReadLineWithin returns the client's next line, waiting at most d.
func (u *User) ReadLineWithin(d time.Duration) (string, error) { return u.p.ReadLineWithin(d) }

// invalidKey returns, in hex, 32 random bytes that are not a valid
// Ed25519 public key: not even a point of the curve, as about half of
// random keys.
func invalidKey() string {
	for {
		var b [32]byte
		rand.Read(b[:])
		if _, err := new(edwards25519.Point).SetBytes(b[:]); err != nil {
			return hex.EncodeToString(b[:])
		}
	}
}

// RandomSeed returns a random 32-byte key seed in hex.
func RandomSeed() string {
	var b [32]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// PublicKey returns the hex public key of a hex seed.
func PublicKey(seedHex string) string {
	seed, _ := hex.DecodeString(seedHex)
	return hex.EncodeToString(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))
}

// Contains says whether a JSON list holds s.
func Contains(list any, s string) bool {
	l, _ := list.([]any)
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

// RequireOK fails the test unless a JSON answer says ok.
func RequireOK(t testing.TB, what string, r map[string]any) {
	t.Helper()
	if r["ok"] != true {
		t.Fatalf("%s: %v", what, r)
	}
}

// ClientMatrix runs the unchanged JS client against a relay joined to the
// testnet of peer (bootstrap boot), at ws (ws://…) and tcp (host:port),
// custodial and not: connections to a JS server (8 MB echo, Protomux
// channels both ways, writes of up to 1 MiB arriving whole, 32 streams
// at once, a missing key), a relayed server that a JS peer connects to (its
// firewall allowing and denying), lookup, announce and unannounce seen
// from JS, and a Hyperswarm on the relayed node meeting a JS one.
func ClientMatrix(t *testing.T, peer *Peer, boot, ws, tcp string) {
	echoSeed := RandomSeed()
	RequireOK(t, "js listen", peer.Do("listen", echoSeed))
	echoKey := PublicKey(echoSeed)
	muxSeed := RandomSeed()
	RequireOK(t, "js listenMux", peer.Do("listenMux", muxSeed))
	sizesSeed := RandomSeed()
	RequireOK(t, "js listenSizes", peer.Do("listenSizes", sizesSeed))
	writes := []int{100 << 10, 5, 1 << 20, 300 << 10, 33 << 10}
	writesSeed := RandomSeed()
	var csv []string
	for _, n := range writes {
		csv = append(csv, strconv.Itoa(n))
	}
	RequireOK(t, "js listenWrites", peer.Do("listenWrites", writesSeed, strings.Join(csv, ",")))

	for _, transport := range []string{"ws", "tcp"} {
		for _, mode := range []string{"custodial", "noncustodial"} {
			t.Run(transport+"/"+mode, func(t *testing.T) {
				where := ws
				if transport == "tcp" {
					where = tcp
				}
				u := StartUser(t, transport, where, mode)

				r := u.Do(map[string]any{"cmd": "connect", "key": echoKey, "bytes": 8 << 20})
				RequireOK(t, "8 MB echo", r)
				t.Logf("8 MB echo: connect %.1f ms, %.1f MB/s", r["ms"], r["mbps"])

				// Protomux reads each data event as one message: the
				// peer's messages must arrive one per buffer.
				RequireOK(t, "four Protomux channels with a JS peer", u.Do(map[string]any{"cmd": "mux", "key": PublicKey(muxSeed)}))

				// Each write is one message at the peer, however long, as
				// the JS relay writes each buffer: a 1 MiB Protomux
				// message must not reach the peer in pieces.
				ints := func(l any) (got []int) {
					for _, n := range l.([]any) {
						got = append(got, int(n.(float64)))
					}
					return got
				}
				r = u.Do(map[string]any{"cmd": "sizes", "key": PublicKey(sizesSeed), "sizes": writes})
				RequireOK(t, "writes of up to 1 MiB", r)
				if got := ints(r["got"]); !slices.Equal(got, writes) {
					t.Fatalf("writes of %v bytes reached the peer as messages of %v", writes, got)
				}
				// And the peer's, each one data event at the client.
				r = u.Do(map[string]any{"cmd": "reads", "key": PublicKey(writesSeed)})
				RequireOK(t, "reads of up to 1 MiB", r)
				if got := ints(r["got"]); !slices.Equal(got, writes) {
					t.Fatalf("the peer's writes of %v bytes reached the client as data events of %v", writes, got)
				}

				RequireOK(t, "32 streams", u.Do(map[string]any{"cmd": "streams", "key": echoKey, "n": 32, "bytes": 64 << 10}))

				r = u.Do(map[string]any{"cmd": "connect", "key": PublicKey(RandomSeed()), "bytes": 1})
				if e, _ := r["error"].(string); e != "PEER_NOT_FOUND: Peer not found" {
					t.Fatalf("connect to a missing key: %v", r)
				}
				// Most random 32 bytes are no Ed25519 point: JS looks
				// such a key up and finds nobody.
				r = u.Do(map[string]any{"cmd": "connect", "key": invalidKey(), "bytes": 1})
				if e, _ := r["error"].(string); e != "PEER_NOT_FOUND: Peer not found" {
					t.Fatalf("connect to a key that is not a point: %v", r)
				}

				allowSeed, denySeed := RandomSeed(), RandomSeed()
				RequireOK(t, "listen", u.Do(map[string]any{"cmd": "listen", "seed": allowSeed}))
				RequireOK(t, "listen (deny)", u.Do(map[string]any{"cmd": "listen", "seed": denySeed, "deny": true}))
				RequireOK(t, "js echo through a relayed server", peer.Do("echo", PublicKey(allowSeed), "1048576"))
				RequireOK(t, "16 JS peers at once through a relayed server", peer.Do("echoMany", PublicKey(allowSeed), "16384", "16"))
				// Both ends relayed, on the same relay.
				other := StartUser(t, transport, where, mode)
				RequireOK(t, "a relayed client through a server relayed by the same relay", other.Do(map[string]any{"cmd": "connect", "key": PublicKey(allowSeed), "bytes": 1 << 20}))
				// A denied JS client waits out its handshake timeout; it
				// runs alongside the rest.
				denied, deniedAt := Start(t, "hyperdht-client.js", boot, PublicKey(denySeed), "1024"), time.Now()
				defer func() {
					line, err := denied.ReadLineWithin(90 * time.Second)
					if err != nil {
						t.Fatalf("denied JS client, %v after it started: %v", time.Since(deniedAt).Round(time.Second), err)
					}
					if !strings.Contains(line, `"error"`) {
						t.Fatalf("a denying firewall let a connection through: %s", line)
					}
					t.Logf("denied JS client: %s after %v", line, time.Since(deniedAt).Round(time.Second))
				}()

				topic, jsSeed := RandomSeed(), RandomSeed()
				RequireOK(t, "js announce", peer.Do("announce", topic, jsSeed))
				if r := u.Do(map[string]any{"cmd": "lookup", "topic": topic}); !Contains(r["peers"], PublicKey(jsSeed)) {
					t.Fatalf("relayed lookup misses the JS announcement: %v", r)
				}

				topic2, seed2 := RandomSeed(), RandomSeed()
				RequireOK(t, "announce", u.Do(map[string]any{"cmd": "announce", "topic": topic2, "seed": seed2}))
				if r := peer.Do("lookup", topic2); !Contains(r["peers"], PublicKey(seed2)) {
					t.Fatalf("JS lookup misses the relayed announcement: %v", r)
				}
				RequireOK(t, "unannounce", u.Do(map[string]any{"cmd": "unannounce", "topic": topic2, "seed": seed2}))
				if r := peer.Do("lookup", topic2); Contains(r["peers"], PublicKey(seed2)) {
					t.Fatalf("JS lookup still finds the unannounced key: %v", r)
				}
				RequireOK(t, "close servers", u.Do(map[string]any{"cmd": "close"}))

				topic3 := RandomSeed()
				text := "hello from " + transport + "/" + mode
				RequireOK(t, "swarm", u.Do(map[string]any{"cmd": "swarm", "topic": topic3, "text": text}))
				swarm := Start(t, "hyperswarm-peer.js", boot, topic3)
				if _, err := swarm.ReadLineWithin(60 * time.Second); err != nil { // joined
					t.Fatal(err)
				}
				if r := u.Read(); r["swarm"] != "hello from js" {
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
