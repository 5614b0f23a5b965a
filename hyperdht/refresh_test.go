package hyperdht

import (
	"crypto/rand"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/dhtrpc"
)

// TestAnnounceRefreshChain: an announce carrying refresh H(r0) can later be
// renewed by presenting r0 alone, without a signature; presenting anything
// else renews nothing.
func TestAnnounceRefreshChain(t *testing.T) {
	a, err := New(Config{DHT: dhtrpc.Config{Host: netip.MustParseAddr("127.0.0.1"), Bootstrapper: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b := joinNode(t, a.DHT().ServerSocket().LocalAddr())
	var topic, r0 [32]byte
	rand.Read(topic[:])
	rand.Read(r0[:])
	r1 := Hash(r0[:])
	_, kp := seedKeyPair()
	storeAt := a.DHT().ServerSocket().LocalAddr()
	token := func() *[32]byte {
		res, _, _, err := b.DHT().Request(ctx30(t), storeAt, false, CmdLookup, &topic, nil, nil)
		if err != nil || res.Token == nil {
			t.Fatalf("no token: %v", err)
		}
		return res.Token
	}
	peer := &Peer{PublicKey: kp.Public, RelayAddresses: []netip.AddrPort{}}
	tok := token()
	id := a.DHT().ID()
	sig := Sign(&kp, AnnounceSignable(NSAnnounce, topic, id, *tok, peer, &r1))
	ann := (&Announce{Peer: peer, Refresh: &r1, Signature: &sig}).Encode(nil)
	if _, _, _, err := b.DHT().Request(ctx30(t), storeAt, false, CmdAnnounce, &topic, ann, tok); err != nil {
		t.Fatal(err)
	}
	held := func() int {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.records.get(topic, 20, time.Now()))
	}
	if held() != 1 {
		t.Fatal("announce not stored")
	}
	a.mu.Lock()
	a.records.remove(topic, kp.Public) // as if it expired
	a.mu.Unlock()

	var wrong [32]byte
	rand.Read(wrong[:])
	for _, try := range []struct {
		token [32]byte
		want  int
	}{{wrong, 0}, {r0, 1}} {
		refresh := try.token
		b.DHT().Request(ctx30(t), storeAt, false, CmdAnnounce, &topic, (&Announce{Refresh: &refresh}).Encode(nil), token())
		time.Sleep(50 * time.Millisecond)
		if got := held(); got != try.want {
			t.Fatalf("after presenting %x…: %d records, want %d", refresh[:4], got, try.want)
		}
	}
}
