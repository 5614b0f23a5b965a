package hyperdht

import (
	"crypto/rand"
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/dhtrelay/dht-relay/internal/interop"
	"github.com/dhtrelay/dht-relay/internal/netlab"
)

// TestLANOutlastsADoubleRandomProbe: a client and a JS server on one LAN
// behind one random NAT cannot punch, and reach each other only on the
// LAN. Here the server's host drops what its neighbour sends until 1.5 s
// after the first of it, so the client's LAN ping answers only on a later
// try (dhtrpc tries every second), after the punch's probe round has shown
// two random NATs. The client must not tell the server it gives up on the
// punch before its LAN try has settled: the server drops the stream on
// that word, and the LAN path would then lead nowhere. Under load the LAN
// ping can lose that race without any rule, which the NAT matrix's shared
// random cell met.
func TestLANOutlastsADoubleRandomProbe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a network lab; it runs in the full suite, not under -short")
	}
	interop.Require(t)
	lab, inet := netlab.New(t)
	boot := labTestnet(t, inet)
	ch := lab.AddHost(netlab.Random)
	sh := lab.AddNeighbour(ch)
	seed := make([]byte, 32)
	rand.Read(seed)
	pk, serverSaw := startNATServer(t, sh, "js", boot, seed)

	nft := func(args ...string) string {
		out, err := sh.Command("nft", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("nft %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	nft("add table ip lanrace")
	nft("add chain ip lanrace input { type filter hook input priority -10 ; }")
	nft(fmt.Sprintf("add rule ip lanrace input ip saddr %s counter drop", ch.Addr))
	dropped := regexp.MustCompile(`packets (\d+)`)
	seen := make(chan struct{}) // closed at the first packet dropped
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			out, err := sh.Command("nft", "list chain ip lanrace input").CombinedOutput()
			if err != nil {
				continue
			}
			if m := dropped.FindSubmatch(out); m != nil {
				if n, _ := strconv.Atoi(string(m[1])); n > 0 {
					close(seen)
					select {
					case <-stop:
					case <-time.After(1500 * time.Millisecond):
						sh.Command("nft", "flush chain ip lanrace input").Run()
					}
					return
				}
			}
		}
	}()
	res := runNATClient(t, ch, "go", boot, pk, nil)
	select {
	case <-seen:
	default:
		t.Fatalf("the client sent nothing on the LAN (got %q): the test no longer delays its LAN try", res)
	}
	if res != "ok" {
		t.Fatalf("a Go client whose LAN try answered after its probe round: %q; the server saw %q", res, serverSaw())
	}
}
