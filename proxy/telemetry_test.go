package proxy

import (
	"testing"

	"go.opentelemetry.io/otel/attribute"

	"github.com/style-shepherd/sheepdog/configs"
)

// TestNewTracerProvider: none builds nothing; stdout and otlp (over HTTP
// or, by OTEL_EXPORTER_OTLP_PROTOCOL, gRPC) build a provider whose
// service is the config's unless OTEL_SERVICE_NAME says otherwise.
func TestNewTracerProvider(t *testing.T) {
	if tp, err := newTracerProvider(t.Context(), configs.Telemetry{ServiceName: "s", Traces: "none"}); tp != nil || err != nil {
		t.Errorf("none: %v, %v; want nothing", tp, err)
	}
	if _, err := traceExporter(t.Context(), "zipkin"); err == nil {
		t.Errorf("an unknown exporter was taken")
	}
	for _, tc := range []struct{ traces, protocol, envName, want string }{
		{"stdout", "", "", "sheepdog-a"},
		{"otlp", "", "", "sheepdog-a"},
		{"otlp", "grpc", "from-env", "from-env"},
	} {
		t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", tc.protocol)
		t.Setenv("OTEL_SERVICE_NAME", tc.envName)
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
		tp, err := newTracerProvider(t.Context(), configs.Telemetry{ServiceName: "sheepdog-a", Traces: tc.traces})
		if err != nil || tp == nil {
			t.Fatalf("%s %s: %v", tc.traces, tc.protocol, err)
		}
		tp.Shutdown(t.Context())
		res, err := traceResource(t.Context(), "sheepdog-a")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := otlpProtocol(), map[string]string{"": "http/protobuf", "grpc": "grpc"}[tc.protocol]; got != want {
			t.Errorf("protocol %q, want %q", got, want)
		}
		name, _ := res.Set().Value(attribute.Key("service.name"))
		if name.AsString() != tc.want {
			t.Errorf("%s: service.name %q, want %q", tc.traces, name.AsString(), tc.want)
		}
	}
}
