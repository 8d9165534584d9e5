package report_test

import (
	"os"

	"github.com/style-shepherd/sheepdog/bench/report"
)

func ExampleReport_WriteTable() {
	var r report.Report
	r.Add(
		report.Row{Target: "origin", Scenario: "browse", Mode: "closed", Served: 2000, Throughput: 1000,
			Latency: report.Latency{P50: 20.2, P95: 21, P99: 22.5, P999: 25, Max: 31}, Upstream: report.Count(2000)},
		report.Row{Target: "sheepdog", Scenario: "browse", Mode: "closed", Served: 80000, Throughput: 40000,
			Latency: report.Latency{P50: 0.21, P95: 0.6, P99: 1.1, P999: 3, Max: 22}, Upstream: report.Count(100)},
	)
	r.Note("varnish: not installed, row missing")
	r.WriteTable(os.Stdout)
	// Output:
	// scenario  target    mode    served  req/s  vs origin     p50     p95     p99   p99.9     max  upstream  batches (mean)  errors
	// browse    origin    closed    2000   1000      1.00x  20.2ms  21.0ms  22.5ms  25.0ms  31.0ms      2000               -  -
	// browse    sheepdog  closed   80000  40000     40.00x   210µs   600µs  1.10ms  3.00ms  22.0ms       100               -  -
	// note: varnish: not installed, row missing
}
