package worker

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/dhtrelay/dht-relay/internal/telemetry"
)

// outOfRange panics as the runtime does on an index out of range.
func outOfRange(i int) int {
	var s []int
	return s[i]
}

// TestAPanicIsContained: a panic in a session's guarded work is recovered,
// logged with its stack, and becomes ErrInternal for that session; the
// goroutine that panicked returns normally, so the process lives on.
func TestAPanicIsContained(t *testing.T) {
	var logs bytes.Buffer
	w := &Worker{log: slog.New(slog.NewTextHandler(&logs, nil)), cfg: Config{Telemetry: telemetry.Nop()}}
	var err error
	func() {
		defer func() {
			if v := recover(); v != nil {
				err = w.recovered(v, "s1")
			}
		}()
		outOfRange(3)
	}()
	if !errors.Is(err, ErrInternal) {
		t.Fatalf("recovered as %v", err)
	}
	if !strings.Contains(logs.String(), "session=s1") || !strings.Contains(logs.String(), "contain_test.go") {
		t.Fatalf("the panic was not logged with its session and stack:\n%s", logs.String())
	}
	// contain itself, on a session already ended: it recovers and the
	// ending it starts is a no-op.
	s := &session{w: w, id: "s2", ended: true}
	func() {
		defer s.contain()
		panic("boom")
	}()
	if !strings.Contains(logs.String(), "session=s2") {
		t.Fatalf("contain did not log the panic:\n%s", logs.String())
	}
}
