package main

import (
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	collectormetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/dhtrelay/dht-relay/internal/await"
	"github.com/dhtrelay/dht-relay/internal/interop"
	"github.com/dhtrelay/dht-relay/noise"
	"github.com/dhtrelay/dht-relay/relay"
)

// otlpReceiver is an OTLP/HTTP endpoint that keeps what it is sent.
type otlpReceiver struct {
	mu      sync.Mutex
	spans   []*tracepb.Span
	service map[string]string // span id → service.name of its sender
	metrics map[string]bool   // metric names received
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	switch req.URL.Path {
	case "/v1/traces":
		var m collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, rs := range m.ResourceSpans {
			svc := ""
			for _, a := range rs.Resource.GetAttributes() {
				if a.Key == "service.name" {
					svc = a.Value.GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					r.spans = append(r.spans, s)
					r.service[string(s.SpanId)] = svc
				}
			}
		}
		b, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(b)
	case "/v1/metrics":
		var m collectormetrics.ExportMetricsServiceRequest
		if err := proto.Unmarshal(body, &m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, rm := range m.ResourceMetrics {
			for _, sm := range rm.ScopeMetrics {
				for _, mt := range sm.Metrics {
					r.metrics[mt.Name] = true
				}
			}
		}
		b, _ := proto.Marshal(&collectormetrics.ExportMetricsServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(b)
	default:
		http.NotFound(w, req)
	}
}

// linked finds a span named child, sent by childSvc, whose parent is a
// span named parent sent by parentSvc, in the same trace.
func (r *otlpReceiver) linked(parent, parentSvc, child, childSvc string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	byID := map[string]*tracepb.Span{}
	for _, s := range r.spans {
		byID[string(s.SpanId)] = s
	}
	for _, s := range r.spans {
		if s.Name != child || r.service[string(s.SpanId)] != childSvc {
			continue
		}
		p := byID[string(s.ParentSpanId)]
		if p != nil && p.Name == parent && r.service[string(p.SpanId)] == parentSvc && string(p.TraceId) == string(s.TraceId) {
			return true
		}
	}
	return false
}

// TestTelemetry: an edge and a worker as processes export over OTLP to a
// receiver in the test: the session's open, a connect, a listen and an
// announce each form one trace from the edge's span, across NATS, to the
// worker's; the metrics arrive over OTLP too, and the Prometheus metrics
// count the sessions, the relayed bytes, the connect latency and a
// PEER_NOT_FOUND.
func TestTelemetry(t *testing.T) {
	interop.Require(t)
	rec := &otlpReceiver{service: map[string]string{}, metrics: map[string]bool{}}
	otlp := httptest.NewServer(rec)
	t.Cleanup(otlp.Close) // after the nodes' last export
	boot, echoKey := startJSEcho(t, strings.Repeat("a7", 32))
	c := newCluster(t, boot, "")
	c.env = []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + otlp.URL, "OTEL_BSP_SCHEDULE_DELAY=100", "OTEL_METRIC_EXPORT_INTERVAL=500"}
	c.worker("w1")
	ws := c.edge("e1", 1)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kp, _ := noise.GenerateKeyPair(rand.Reader)
	tr, err := relay.DialWebSocket(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	client, err := relay.NewClient(tr, relay.ClientConfig{KeyPair: kp, Custodial: true})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	conn, err := client.Connect(ctx, echoKey)
	if err != nil {
		t.Fatal(err)
	}
	const size = 1 << 20
	go conn.Write(make([]byte, size))
	if _, err := io.ReadFull(conn, make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	missing, _ := noise.GenerateKeyPair(rand.Reader)
	if _, err := client.Connect(ctx, missing.Public); err == nil || !strings.Contains(err.Error(), "PEER_NOT_FOUND") {
		t.Fatalf("connect to a missing key: %v", err)
	}
	srv, err := client.Listen(ctx, kp, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	var topic [32]byte
	rand.Read(topic[:])
	if err := client.Announce(ctx, topic, kp); err != nil {
		t.Fatal(err)
	}

	for _, op := range []string{"session.open", "connect", "listen", "announce"} {
		await.True(t, "a trace of "+op+" from edge to worker", func() bool {
			return rec.linked("edge "+op, "edge", "worker "+op, "dhtworker")
		})
	}
	await.True(t, "metrics over OTLP", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.metrics["dhtrelay.sessions"] && rec.metrics["dhtrelay.relayed"] && rec.metrics["dhtrelay.connect.duration"]
	})

	w, e := c.metrics["w1"], c.metrics["e1"]
	if got := metric(e, "dhtrelay_sessions"); got != "1" {
		t.Errorf("edge sessions %s, want 1", got)
	}
	if got := metric(w, "dhtrelay_sessions"); got != "1" {
		t.Errorf("worker sessions %s, want 1", got)
	}
	for _, dir := range []string{"to_peer", "to_client"} {
		n, _ := strconv.ParseFloat(metricLabeled(w, "dhtrelay_relayed_bytes_total", `direction="`+dir+`"`), 64)
		if n < size {
			page, _ := metricsPage(w)
			t.Errorf("relayed %s: %v bytes, want at least %d\n%s", dir, n, size, page)
		}
	}
	if got := metricLabeled(w, "dhtrelay_connect_duration_seconds_count", `result="ok"`); got != "1" {
		t.Errorf("connects ok: %s, want 1", got)
	}
	if got := metricLabeled(w, "dhtrelay_errors_total", `kind="PEER_NOT_FOUND"`); got != "1" {
		t.Errorf("PEER_NOT_FOUND errors: %s, want 1", got)
	}
	if n, _ := strconv.ParseFloat(metricLabeled(w, "dhtrelay_udx_packets_total", `event="data_received"`), 64); n*1500 < size { // no UDX packet carries 1,500 bytes
		t.Errorf("UDX data packets received: %v for %d bytes relayed to the client", n, size)
	}
	for _, name := range []string{"dhtrelay_udx_syscalls_total", "dhtrelay_udx_read_slots", "dhtrelay_udx_read_slots_refused_total"} {
		if got := metric(w, name); got == "?" {
			t.Errorf("the worker does not export %s", name)
		}
	}
}
