package serve

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

func readMetric(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestGCPacerHoldsCollectionsBackWhileGarbageFlows: with little live,
// garbage made as fast as it can be is collected a few dozen times per
// 512 MiB once the pacer is on, where GCPercent alone collects after
// every MB or so; once collections come far apart again, GCPercent is
// back.
func TestGCPacerHoldsCollectionsBackWhileGarbageFlows(t *testing.T) {
	paceGC(GCPercent)
	cycles := readMetric("/gc/cycles/total:gc-cycles")
	var last []byte
	for range (512 << 20) / (64 << 10) {
		last = make([]byte, 64<<10)
	}
	runtime.KeepAlive(last)
	n := readMetric("/gc/cycles/total:gc-cycles") - cycles
	if n > 64 {
		t.Fatalf("%d collections while making 512 MiB of garbage", n)
	}
	t.Logf("%d collections while making 512 MiB of garbage; percentage %d", n, readMetric("/gc/gogc:percent"))

	for deadline := time.Now().Add(20 * time.Second); readMetric("/gc/gogc:percent") != GCPercent; {
		if time.Now().After(deadline) {
			t.Fatalf("the percentage stayed at %d with collections %v apart", readMetric("/gc/gogc:percent"), 5*minGCGap)
		}
		time.Sleep(5 * minGCGap)
		runtime.GC()
	}
}
