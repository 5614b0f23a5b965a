package await

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if !Poll(time.Second, func() bool { return time.Since(start) > 300*time.Millisecond }) {
			t.Fatal("a condition that came true was missed")
		}
		if waited := time.Since(start); waited > 300*time.Millisecond+maxPoll {
			t.Fatalf("noticed after %v", waited)
		}
		start = time.Now()
		if Poll(time.Second, func() bool { return false }) {
			t.Fatal("a condition that never held was reported")
		}
		if waited := time.Since(start); waited < time.Second || waited > time.Second+maxPoll {
			t.Fatalf("gave up after %v", waited)
		}
	})
}
