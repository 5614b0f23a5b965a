package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dhtrelay/dht-relay/internal/limits"
)

// TestVersionAndEnvironment: --version prints the build and exits, and
// the all-in-one binary takes its flags from DHTRELAY_* variables as the
// cluster binaries do, the command line winning.
func TestVersionAndEnvironment(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--version"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "dht-relay ") || !strings.Contains(out.String(), "go1.") {
		t.Fatalf("--version printed %q", out.String())
	}
	t.Setenv("DHTRELAY_MAX_STREAMS", "0")
	if err := run(context.Background(), []string{"--port", "0"}, &out, &out); !errors.Is(err, limits.ErrInvalid) {
		t.Fatalf("DHTRELAY_MAX_STREAMS=0 was not taken: %v", err)
	}
	if err := run(context.Background(), []string{"--max-streams", "1", "--log-format", "yaml"}, &out, &out); err == nil || !strings.Contains(err.Error(), "log format") {
		t.Fatalf("the command line did not win over the environment, or a bad log format passed: %v", err)
	}
}
