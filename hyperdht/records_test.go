package hyperdht

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/dhtrpc"
	"github.com/dhtrelay/dht-relay/internal/interop"
	"github.com/dhtrelay/dht-relay/noise"
)

type jsPeer struct{ p *interop.Process }

func (j *jsPeer) do(t testing.TB, out any, args ...string) {
	t.Helper()
	io.WriteString(j.p.Stdin, strings.Join(args, " ")+"\n")
	line, err := j.p.ReadLineWithin(60 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var e struct{ Error string }
	json.Unmarshal([]byte(line), &e)
	if e.Error != "" {
		t.Fatalf("JS %v: %s", args, e.Error)
	}
	if err := json.Unmarshal([]byte(line), out); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
}

// startMixed starts a JS testnet with a JS client and a persistent Go node
// joined to it.
func startMixed(t testing.TB) (*jsPeer, *Node) {
	t.Helper()
	p := interop.Start(t, "hyperdht-peer.js", "10")
	line, err := p.ReadLineWithin(60 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info struct{ Bootstrap string }
	json.Unmarshal([]byte(line), &info)
	n, err := New(Config{DHT: dhtrpc.Config{
		Bootstrap:  []netip.AddrPort{netip.MustParseAddrPort(info.Bootstrap)},
		Host:       netip.MustParseAddr("127.0.0.1"),
		Persistent: true,
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	if !n.DHT().Persistent() {
		t.Fatal("Go node did not become persistent")
	}
	return &jsPeer{p}, n
}

func ctx30(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func goLookup(t *testing.T, n *Node, topic [32]byte) []string {
	t.Helper()
	var keys []string
	_, err := n.Lookup(ctx30(t), topic, func(r LookupResult) {
		for _, p := range r.Peers {
			k := hex.EncodeToString(p.PublicKey[:])
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func seedKeyPair() ([32]byte, noise.KeyPair) {
	var seed [32]byte
	rand.Read(seed[:])
	return seed, noise.KeyPairFromSeed(seed)
}

// TestAnnounceLookupBothWays: JS announces and Go finds it; Go announces,
// JS finds it, Go unannounces and JS no longer does; the Go node also
// stores announcements made by JS.
func TestAnnounceLookupBothWays(t *testing.T) {
	js, n := startMixed(t)
	var topic1, topic2 [32]byte
	rand.Read(topic1[:])
	rand.Read(topic2[:])

	jsSeed, jsKP := seedKeyPair()
	var ok struct{ OK bool }
	js.do(t, &ok, "announce", hex.EncodeToString(topic1[:]), hex.EncodeToString(jsSeed[:]))
	if got := goLookup(t, n, topic1); !slices.Contains(got, hex.EncodeToString(jsKP.Public[:])) {
		t.Fatalf("Go lookup found %v, not the JS announcement", got)
	}
	n.mu.Lock()
	stored := len(n.records.get(topic1, 20, time.Now()))
	n.mu.Unlock()
	if stored != 1 {
		t.Fatalf("the Go node stores %d records of the JS announcement", stored)
	}

	_, goKP := seedKeyPair()
	if err := n.Announce(ctx30(t), topic2, LocalSigner(&goKP), nil, nil); err != nil {
		t.Fatal(err)
	}
	var look struct{ Peers []string }
	js.do(t, &look, "lookup", hex.EncodeToString(topic2[:]))
	if !slices.Contains(look.Peers, hex.EncodeToString(goKP.Public[:])) {
		t.Fatalf("JS lookup found %v, not the Go announcement", look.Peers)
	}
	if err := n.Unannounce(ctx30(t), topic2, LocalSigner(&goKP), nil); err != nil {
		t.Fatal(err)
	}
	js.do(t, &look, "lookup", hex.EncodeToString(topic2[:]))
	if slices.Contains(look.Peers, hex.EncodeToString(goKP.Public[:])) {
		t.Fatal("JS lookup still finds the unannounced Go key")
	}

	// JS unannounces its own: the Go node drops the record too.
	js.do(t, &ok, "unannounce", hex.EncodeToString(topic1[:]), hex.EncodeToString(jsSeed[:]))
	if got := goLookup(t, n, topic1); slices.Contains(got, hex.EncodeToString(jsKP.Public[:])) {
		t.Fatal("Go lookup still finds the JS key after JS unannounced it")
	}
}

// TestValuesBothWays: immutable and mutable puts from each side are read
// by the other.
func TestValuesBothWays(t *testing.T) {
	js, n := startMixed(t)
	v1 := []byte("stored by JS")
	var put struct{ Hash string }
	js.do(t, &put, "immutablePut", hex.EncodeToString(v1))
	h, _ := hex.DecodeString(put.Hash)
	got, err := n.ImmutableGet(ctx30(t), [32]byte(h))
	if err != nil || string(got) != string(v1) {
		t.Fatalf("Go immutableGet: %q, %v", got, err)
	}
	v2 := []byte("stored by Go")
	hash, err := n.ImmutablePut(ctx30(t), v2)
	if err != nil {
		t.Fatal(err)
	}
	var get struct {
		Value *string
		Seq   *uint64
	}
	js.do(t, &get, "immutableGet", hex.EncodeToString(hash[:]))
	if get.Value == nil || *get.Value != hex.EncodeToString(v2) {
		t.Fatalf("JS immutableGet: %v", get.Value)
	}

	jsSeed, jsKP := seedKeyPair()
	var ok struct{ OK bool }
	js.do(t, &ok, "mutablePut", hex.EncodeToString(jsSeed[:]), hex.EncodeToString([]byte("js v3")), "3")
	m, err := n.MutableGet(ctx30(t), jsKP.Public, 0)
	if err != nil || m == nil || m.Seq != 3 || string(m.Value) != "js v3" {
		t.Fatalf("Go mutableGet: %+v, %v", m, err)
	}
	_, goKP := seedKeyPair()
	if err := n.MutablePut(ctx30(t), &goKP, []byte("go v5"), 5); err != nil {
		t.Fatal(err)
	}
	js.do(t, &get, "mutableGet", hex.EncodeToString(goKP.Public[:]), "0")
	if get.Value == nil || *get.Value != hex.EncodeToString([]byte("go v5")) || *get.Seq != 5 {
		t.Fatalf("JS mutableGet: %v %v", get.Value, get.Seq)
	}
	// A lower sequence number is refused by the nodes that hold seq 5.
	if err := n.MutablePut(ctx30(t), &goKP, []byte("older"), 4); err == nil {
		t.Fatal("a put with a lower seq was accepted everywhere")
	}
}

// TestFindPeer: a JS server's record is found by Go; an unknown key fails
// with PEER_NOT_FOUND.
func TestFindPeer(t *testing.T) {
	js, n := startMixed(t)
	seed, kp := seedKeyPair()
	var ok struct{ OK bool }
	js.do(t, &ok, "listen", hex.EncodeToString(seed[:]))
	p, _, err := n.FindPeer(ctx30(t), kp.Public)
	if err != nil || p.PublicKey != kp.Public {
		t.Fatalf("FindPeer: %v, %v", p, err)
	}
	_, other := seedKeyPair()
	if _, _, err := n.FindPeer(ctx30(t), other.Public); err != ErrPeerNotFound {
		t.Fatalf("unknown key: %v", err)
	}
}
