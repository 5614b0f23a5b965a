// Package telemetry is a relay node's OpenTelemetry: a tracer and the
// service's metrics, served in Prometheus text format on the node's
// metrics address and, when OTEL_EXPORTER_OTLP_ENDPOINT (or its per-signal
// variants) is set, exported over OTLP/HTTP as the OpenTelemetry
// environment variables configure. Traces cross NATS as W3C trace context
// (traceparent, tracestate) in message headers, so one trace follows an
// operation from the edge that took it to the worker that ran it.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// scope names the instrumentation in every span and metric.
const scope = "github.com/dhtrelay/dht-relay"

// Telemetry is one process's tracer and metrics.
type Telemetry struct {
	Tracer  trace.Tracer
	Metrics *Metrics
	// Meter registers a process's own observable instruments.
	Meter metric.Meter

	handler  http.Handler
	shutdown []func(context.Context) error
}

// Setup starts telemetry for a process of service (dht-relay, edge,
// dhtworker) named node. Spans are recorded only when an OTLP endpoint is
// configured: nothing else would read them.
func Setup(ctx context.Context, service, node string) (*Telemetry, error) {
	res := resource.NewSchemaless(
		attribute.String("service.name", service),
		attribute.String("service.instance.id", node),
	)
	reg := prometheus.NewRegistry()
	// The Go runtime's and the process's own series (go_goroutines,
	// go_memstats_*, process_resident_memory_bytes, ...) beside ours.
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("telemetry: Go collector: %w", err)
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("telemetry: process collector: %w", err)
	}
	prom, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus: %w", err)
	}
	readers := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(prom)}
	t := &Telemetry{handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}
	otlp := exporting("TRACES")
	if exporting("METRICS") {
		exp, err := otlpmetrichttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP metrics: %w", err)
		}
		readers = append(readers, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)))
	}
	mp := sdkmetric.NewMeterProvider(readers...)
	t.shutdown = append(t.shutdown, mp.Shutdown)
	t.Meter = mp.Meter(scope)
	if t.Metrics, err = newMetrics(t.Meter); err != nil {
		return nil, err
	}
	if err := observeBuild(t.Meter); err != nil {
		return nil, fmt.Errorf("telemetry: build info: %w", err)
	}
	if !otlp {
		t.Tracer = tracenoop.NewTracerProvider().Tracer(scope)
		return t, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		mp.Shutdown(ctx)
		return nil, fmt.Errorf("telemetry: OTLP traces: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithBatcher(exp))
	t.shutdown = append(t.shutdown, tp.Shutdown)
	t.Tracer = tp.Tracer(scope)
	return t, nil
}

// BuildInfo returns the binary's module version ("devel" when built
// from a work tree) and the VCS revision it was built from, if known.
func BuildInfo() (version, revision string) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel", ""
	}
	version = bi.Main.Version
	if version == "" || version == "(devel)" {
		version = "devel"
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			revision = s.Value
		}
	}
	return version, revision
}

// observeBuild registers dhtrelay_build_info{version,revision,goversion},
// always 1, so that dashboards can tell which build runs where.
func observeBuild(m metric.Meter) error {
	version, revision := BuildInfo()
	attrs := metric.WithAttributeSet(attribute.NewSet(attribute.String("version", version),
		attribute.String("revision", revision), attribute.String("goversion", runtime.Version())))
	_, err := m.Int64ObservableGauge("dhtrelay.build.info", metric.WithDescription("The running build: always 1, with its version, VCS revision and Go release."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(1, attrs)
			return nil
		}))
	return err
}

// exporting says whether OTLP export of signal (TRACES, METRICS) is
// configured.
func exporting(signal string) bool {
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") != ""
}

// Nop is telemetry that records nothing, for parts run without a process
// around them.
func Nop() *Telemetry {
	meter := metricnoop.NewMeterProvider().Meter(scope)
	m, _ := newMetrics(meter)
	return &Telemetry{Tracer: tracenoop.NewTracerProvider().Tracer(scope), Metrics: m, Meter: meter, handler: http.NotFoundHandler()}
}

// Handler serves the metrics in Prometheus text format.
func (t *Telemetry) Handler() http.Handler { return t.handler }

// Shutdown flushes what is pending to the OTLP endpoint, within ctx.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for i := len(t.shutdown) - 1; i >= 0; i-- {
		errs = append(errs, t.shutdown[i](ctx))
	}
	return errors.Join(errs...)
}

// ShutdownTimeout bounds the final flush of a process's telemetry.
const ShutdownTimeout = 5 * time.Second

// End ends span, marking it failed with err when err is set.
func End(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// propagator carries W3C trace context.
var propagator = propagation.TraceContext{}

// Inject returns NATS headers carrying ctx's span, or nil when ctx has
// none being recorded: frames without a trace pay nothing.
func Inject(ctx context.Context) nats.Header {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	h := nats.Header{}
	propagator.Inject(ctx, propagation.HeaderCarrier(h))
	return h
}

// Extract returns ctx with the remote span h carries, if any.
func Extract(ctx context.Context, h nats.Header) context.Context {
	if h == nil {
		return ctx
	}
	return propagator.Extract(ctx, propagation.HeaderCarrier(h))
}
