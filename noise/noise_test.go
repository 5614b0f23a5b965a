package noise

import (
	"bytes"
	"testing"
)

func run(t *testing.T, p Pattern, payloads ...[]byte) (Result, Result) {
	t.Helper()
	a, _ := GenerateKeyPair(bytesReader(1))
	b, _ := GenerateKeyPair(bytesReader(2))
	ic := Config{Pattern: p, Initiator: true, Static: a, Prologue: []byte("x")}
	if p == IK {
		ic.RemoteStatic = b.Public[:]
	}
	i, err := NewHandshake(ic)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewHandshake(Config{Pattern: p, Static: b, Prologue: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	from, to := i, r
	for n := 0; !i.Complete() || !r.Complete(); n++ {
		pl := payloads[n%len(payloads)]
		msg, err := from.Send(pl)
		if err != nil {
			t.Fatalf("send %d: %v", n, err)
		}
		got, err := to.Recv(msg)
		if err != nil {
			t.Fatalf("recv %d: %v", n, err)
		}
		if !bytes.Equal(got, pl) {
			t.Fatalf("payload %d: got %x want %x", n, got, pl)
		}
		from, to = to, from
	}
	ri, _ := i.Result()
	rr, _ := r.Result()
	if ri.RemoteStatic != b.Public || rr.RemoteStatic != a.Public {
		t.Fatal("remote static keys not learned")
	}
	return ri, rr
}

type bytesReader byte

func (b bytesReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b) + byte(i)
	}
	return len(p), nil
}

func TestHandshakesAgree(t *testing.T) {
	for _, p := range []Pattern{XX, IK} {
		t.Run(p.String(), func(t *testing.T) {
			ri, rr := run(t, p, []byte("hello"), nil)
			if ri.Tx != rr.Rx || ri.Rx != rr.Tx || ri.Hash != rr.Hash {
				t.Fatal("sides disagree")
			}
			if ri.Tx == ri.Rx {
				t.Fatal("tx equals rx")
			}
		})
	}
}

func TestOutOfTurnAndTamper(t *testing.T) {
	a, _ := GenerateKeyPair(bytesReader(1))
	b, _ := GenerateKeyPair(bytesReader(2))
	i, _ := NewHandshake(Config{Pattern: IK, Initiator: true, Static: a, RemoteStatic: b.Public[:]})
	r, _ := NewHandshake(Config{Pattern: IK, Static: b})
	if _, err := r.Send(nil); err != ErrOutOfTurn {
		t.Fatalf("responder send first: %v", err)
	}
	msg, _ := i.Send([]byte("p"))
	bad := append([]byte(nil), msg...)
	bad[len(bad)-1] ^= 1
	if _, err := r.Recv(bad); err == nil {
		t.Fatal("tampered message accepted")
	}
	r2, _ := NewHandshake(Config{Pattern: IK, Static: b})
	if _, err := r2.Recv(msg[:10]); err == nil {
		t.Fatal("short message accepted")
	}
}

func TestDHRejectsBadPoints(t *testing.T) {
	kp, _ := GenerateKeyPair(bytesReader(3))
	identity := make([]byte, 32)
	identity[0] = 1
	order2 := make([]byte, 32)
	order2[0] = 0xec
	for i := 1; i < 31; i++ {
		order2[i] = 0xff
	}
	order2[31] = 0x7f
	nonCanonical := bytes.Repeat([]byte{0xff}, 32)
	for name, p := range map[string][]byte{"identity": identity, "order2": order2, "noncanonical": nonCanonical, "short": identity[:5]} {
		if _, err := DH(&kp, p); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	other, _ := GenerateKeyPair(bytesReader(4))
	x, err := DH(&kp, other.Public[:])
	if err != nil {
		t.Fatal(err)
	}
	y, _ := DH(&other, kp.Public[:])
	if x != y {
		t.Fatal("DH not symmetric")
	}
}
