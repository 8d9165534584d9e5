package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/style-shepherd/sheepdog/cachelayer"
	"github.com/style-shepherd/sheepdog/configs"
)

// WithTracerProvider traces through tp instead of the exporter that
// telemetry.traces names; tests pass one with an in-memory exporter. The
// caller owns tp and shuts it down.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(p *Proxy) { p.setTracer(tp) }
}

// newTracerProvider builds the trace pipeline that telemetry.traces
// names, or returns nil for none. The standard OTEL_* variables apply:
// OTEL_EXPORTER_OTLP_ENDPOINT and _HEADERS (and their _TRACES_ forms),
// OTEL_EXPORTER_OTLP_PROTOCOL (http/protobuf, the default, or grpc),
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (over service_name), and
// OTEL_TRACES_SAMPLER with its _ARG (default: parent-based, always on).
func newTracerProvider(ctx context.Context, cfg configs.Telemetry) (*sdktrace.TracerProvider, error) {
	exp, err := traceExporter(ctx, cfg.Traces)
	if exp == nil || err != nil {
		return nil, err
	}
	res, err := traceResource(ctx, cfg.ServiceName)
	if err != nil {
		return nil, err
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}

// traceExporter is the exporter telemetry.traces names; nil for none.
func traceExporter(ctx context.Context, traces string) (sdktrace.SpanExporter, error) {
	var exp sdktrace.SpanExporter
	var err error
	switch traces {
	case "none", "":
		return nil, nil
	case "stdout":
		exp, err = stdouttrace.New(stdouttrace.WithWriter(os.Stdout))
	case "otlp":
		if otlpProtocol() == "grpc" {
			exp, err = otlptracegrpc.New(ctx)
		} else {
			exp, err = otlptracehttp.New(ctx)
		}
	default:
		err = fmt.Errorf("unknown exporter %q", traces)
	}
	if err != nil {
		return nil, fmt.Errorf("telemetry.traces: %w", err)
	}
	return exp, nil
}

// traceResource describes this process in its spans. Later options win:
// the environment names the service over the config, as OpenTelemetry's
// conventions ask.
func traceResource(ctx context.Context, service string) (*resource.Resource, error) {
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(service)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	return res, nil
}

// otlpProtocol is the OTLP transport the environment asks for.
func otlpProtocol() string {
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if v := strings.TrimSpace(os.Getenv(name)); v != "" {
			return v
		}
	}
	return "http/protobuf"
}

// RouteLibraryLogs sends the lines the libraries beneath the proxy log on
// their own (go-redis: a failed dial, say) to log, for main to call once.
func RouteLibraryLogs(log *slog.Logger) { cachelayer.RouteRedisLogs(log) }
