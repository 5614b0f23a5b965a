package admission

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestAdmission(t *testing.T) {
	now := time.Unix(1000, 0)
	ad := New(Config{PerAddress: 2, PerSubnet: 3, Rate: 1, Burst: 10, Allow: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}})
	admit := func(a string) (func(), error) {
		r, _, err := ad.Admit(addr(a), now)
		return r, err
	}
	r1, err := admit("192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admit("192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := admit("192.0.2.1"); !errors.Is(err, ErrAddressFull) || Kind(err) != "address_sessions" {
		t.Fatalf("third from one address: %v", err)
	}
	if _, err := admit("192.0.2.2"); err != nil {
		t.Fatal(err)
	}
	if _, err := admit("192.0.2.3"); !errors.Is(err, ErrSubnetFull) || Kind(err) != "subnet_sessions" {
		t.Fatalf("fourth from one /24: %v", err)
	}
	if _, err := admit("192.0.3.1"); err != nil {
		t.Fatalf("another /24: %v", err)
	}
	r1()
	r1() // giving back twice gives back once
	if _, err := admit("192.0.2.3"); err != nil {
		t.Fatalf("after one was given back: %v", err)
	}
	if _, err := admit("192.0.2.4"); !errors.Is(err, ErrSubnetFull) {
		t.Fatalf("a release given back twice counted twice: %v", err)
	}
	// IPv6: one /64 is one address.
	if _, err := admit("2001:db8:1:1::1"); err != nil {
		t.Fatal(err)
	}
	if _, err := admit("2001:db8:1:1::2"); err != nil {
		t.Fatal(err)
	}
	if _, err := admit("2001:db8:1:1::3"); !errors.Is(err, ErrAddressFull) {
		t.Fatalf("third from one /64: %v", err)
	}
	// The allow list is exempt from everything.
	for range 100 {
		if _, err := admit("10.9.1.1"); err != nil {
			t.Fatalf("allowed address: %v", err)
		}
	}
}

func TestAdmissionRate(t *testing.T) {
	now := time.Unix(1000, 0)
	ad := New(Config{PerAddress: 100, PerSubnet: 100, Rate: 2, Burst: 3})
	for range 3 {
		if _, _, err := ad.Admit(addr("198.51.100.7"), now); err != nil {
			t.Fatal(err)
		}
	}
	_, log, err := ad.Admit(addr("198.51.100.7"), now)
	if !errors.Is(err, ErrTooFast) || Kind(err) != "address_rate" || !log {
		t.Fatalf("past the burst: %v, log %v", err, log)
	}
	if _, log, _ := ad.Admit(addr("198.51.100.7"), now); log {
		t.Fatal("a second refusal within a minute asked to be logged")
	}
	if _, _, err := ad.Admit(addr("198.51.100.7"), now.Add(time.Second)); err != nil {
		t.Fatalf("a second later, at 2 a second: %v", err)
	}
}

// TestAdmissionTableIsBounded: addresses that come once and leave do not
// pile up.
func TestAdmissionTableIsBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	ad := New(Config{PerAddress: 1, PerSubnet: 1 << 20, Rate: 100, Burst: 1})
	for i := range 100000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		release, _, err := ad.Admit(a, now)
		if err != nil {
			t.Fatal(err)
		}
		release()
		now = now.Add(10 * time.Millisecond) // each bucket refills before the next sweep
	}
	if n := ad.Addresses(); n > 2*sweepAt {
		t.Fatalf("%d addresses held after 100,000 came and went", n)
	}
}
