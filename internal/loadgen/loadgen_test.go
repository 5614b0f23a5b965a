package loadgen

import (
	"net/netip"
	"strings"
	"testing"
)

func TestSourcesSpread(t *testing.T) {
	s := NewSources(netip.MustParsePrefix("127.0.0.0/30"), 2)
	var got []string
	for range 7 {
		got = append(got, s.Next().String())
	}
	want := "127.0.0.1 127.0.0.1 127.0.0.2 127.0.0.2 127.0.0.3 127.0.0.3 127.0.0.1"
	if strings.Join(got, " ") != want {
		t.Fatalf("spread %v, want %s", got, want)
	}
	if NewSources(netip.Prefix{}, 5).Next().IsValid() {
		t.Fatal("with no prefix the system should pick")
	}
}

func TestScrape(t *testing.T) {
	text := "# HELP x\ngo_goroutines_extra 7\ngo_goroutines 12\nprocess_resident_memory_bytes 3.5e+07\n" +
		"dhtrelay_sessions{role=\"worker\"} 4\ndhtrelay_sessions{role=\"edge\",otel_scope_name=\"x\"} 9\n"
	got, err := scrape(strings.NewReader(text), "process_resident_memory_bytes", "go_goroutines", `dhtrelay_sessions{role="edge"`)
	if err != nil || got[0] != 35_000_000 || got[1] != 12 || got[2] != 9 {
		t.Fatalf("%v %v", got, err)
	}
}

func FuzzScrape(f *testing.F) {
	f.Add("go_goroutines 1\nprocess_resident_memory_bytes 2\n")
	f.Add("go_goroutines\n{}\n")
	f.Fuzz(func(t *testing.T, text string) {
		scrape(strings.NewReader(text), "go_goroutines", `x{a="b"`)
	})
}
