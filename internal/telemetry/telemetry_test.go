package telemetry

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

// A span's context survives the trip through NATS headers; a context
// without one adds no headers.
func TestPropagation(t *testing.T) {
	if h := Inject(context.Background()); h != nil {
		t.Fatalf("headers without a span: %v", h)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: trace.FlagsSampled,
	})
	h := Inject(trace.ContextWithSpanContext(context.Background(), sc))
	if h.Get("traceparent") == "" && h.Get("Traceparent") == "" {
		t.Fatalf("no traceparent in %v", h)
	}
	got := trace.SpanContextFromContext(Extract(context.Background(), h))
	if got.TraceID() != sc.TraceID() || got.SpanID() != sc.SpanID() || !got.IsRemote() {
		t.Fatalf("extracted %v, want %v", got, sc)
	}
}

// The Prometheus handler serves the instruments under their documented
// names once they have values.
func TestPrometheusNames(t *testing.T) {
	tel, err := Setup(context.Background(), "test", "n1")
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	m := tel.Metrics
	m.Session(RoleEdge, 1)
	m.Stream(1)
	m.Relayed(true, 10)
	m.Connect(0, "ok")
	m.Error("PEER_NOT_FOUND")
	rec := httptest.NewRecorder()
	tel.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`dhtrelay_sessions{role="edge"} 1`,
		`dhtrelay_streams 1`,
		`dhtrelay_relayed_bytes_total{direction="to_client"} 10`,
		`dhtrelay_connect_duration_seconds_count{result="ok"} 1`,
		`dhtrelay_errors_total{kind="PEER_NOT_FOUND"} 1`,
		`dhtrelay_build_info{goversion="go1.`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("no %s in\n%s", want, body)
		}
	}
}
