package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dhtrelay/dht-relay/internal/limits"
	"github.com/dhtrelay/dht-relay/internal/serve"
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

// TestFlagsRefuseWhatTheyCannotServe: a DHT host that is not IPv4, a TLS
// certificate without its key, and a port out of range are refused at
// start, not taken silently for something else.
func TestFlagsRefuseWhatTheyCannotServe(t *testing.T) {
	var out bytes.Buffer
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--dht-host", "::1", "--bootstrap", "127.0.0.1:1"}, serve.ErrDHTHostIPv4.Error()},
		{[]string{"--cert", "c.pem"}, serve.ErrTLSPair.Error()},
		{[]string{"--tcp-port", "70000"}, "port number"},
	} {
		err := run(context.Background(), append([]string{"--port", "0", "--drain", "0"}, c.args...), &out, &out)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v", c.args, err)
		}
	}
}

// TestProbe: --probe answers a health check without a shell: exit 0 for
// a 200, an error otherwise.
func TestProbe(t *testing.T) {
	code := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }))
	defer srv.Close()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--probe", srv.URL}, &out, &out); err != nil {
		t.Fatalf("a 200: %v", err)
	}
	code = http.StatusServiceUnavailable
	if err := run(context.Background(), []string{"--probe", srv.URL}, &out, &out); err == nil {
		t.Fatal("a 503 passed")
	}
}
