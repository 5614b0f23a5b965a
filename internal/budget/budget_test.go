package budget

import (
	"sync"
	"testing"
)

func TestBudget(t *testing.T) {
	b := New(100)
	if !b.Take(60) || b.Take(41) || !b.Take(40) || b.Take(1) {
		t.Fatal("takes past the limit admitted, or within it refused")
	}
	if !b.Tight() {
		t.Fatal("a full budget is not tight")
	}
	b.Give(60)
	if b.Used() != 40 || b.Tight() {
		t.Fatalf("after giving back: used %d", b.Used())
	}
	// Concurrent takers never overdraw it.
	b = New(1000)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10000 {
				if b.Take(7) {
					if b.Used() > 1000 {
						t.Error("overdrawn")
					}
					b.Give(7)
				}
			}
		})
	}
	wg.Wait()
	if b.Used() != 0 {
		t.Fatalf("used %d after every take was given back", b.Used())
	}
}
