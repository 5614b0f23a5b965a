// Package await is the tests' one way to wait for a condition that
// something else makes true: poll it, briefly at first, and fail the test
// with what was awaited if it stays false past a deadline.
package await

import (
	"testing"
	"time"
)

// Timeout is how long True waits by default: generous, because the
// machines tests run on are shared and a slow moment is not a failure.
const Timeout = 30 * time.Second

// firstPoll and maxPoll pace polling: quick to notice a condition that
// comes at once, and no busier than maxPoll when it takes a while.
const (
	firstPoll = time.Millisecond
	maxPoll   = 50 * time.Millisecond
)

// True waits up to Timeout for cond, and fails t with what if it does not
// hold by then.
func True(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Within(t, Timeout, what, cond)
}

// Within is True with a deadline of its own.
func Within(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(d, cond) {
		t.Fatalf("waited %v for %s", d, what)
	}
}

// Poll waits up to d for cond and reports whether it held, for a test that
// has more to say than True when it does not.
func Poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for wait := firstPoll; !cond(); wait = min(2*wait, maxPoll) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(wait)
	}
	return true
}
