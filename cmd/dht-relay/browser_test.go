package main

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/dhtrelay/dht-relay/internal/interop"
)

// TestBrowser: headless Chromium loads a page with the unchanged JS client
// bundled for the browser; it connects over the browser's WebSocket
// through dht-relay to a JS peer and echoes 1 MB.
func TestBrowser(t *testing.T) {
	interop.Require(t)
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium is required in CI (.ci/run installs it): %v", err)
		}
		t.Skipf("no Chromium at %s (apt-get install chromium, or set CHROMIUM)", chromium)
	}
	t.Setenv("CHROMIUM", chromium)
	peer, boot := interop.StartTestnet(t)
	relay := startRelay(t, "--bootstrap", boot)
	seed := interop.RandomSeed()
	interop.RequireOK(t, "js listen", peer.Do("listen", seed))
	out := interop.Run(t, nil, "browser-run.js", relay.ws, interop.PublicKey(seed), "1048576")
	var r struct{ Result, Error string }
	if err := json.Unmarshal(out, &r); err != nil || r.Result != "ok" || r.Error != "" {
		t.Fatalf("browser: %s", out)
	}
}
