// Package report holds the results of a bench run, one row per target and
// scenario, and renders them: an aligned text table for the terminal and the
// README, JSON for machines, and one self-contained HTML page with inline SVG
// charts. Every rendering depends only on the Report, so the same results
// always render to the same bytes.
package report

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/style-shepherd/sheepdog/bench/load"
)

// DefaultBaseline is the target every row is compared with: the origin,
// measured straight, in the same run.
const DefaultBaseline = "origin"

// Report is the results of one bench run.
type Report struct {
	// Title heads the HTML page. Default "Sheepdog bench".
	Title string `json:"title,omitempty"`
	// Command is how to reproduce the run, shown under the title.
	Command string `json:"command,omitempty"`
	// Baseline names the target whose row of the same scenario every
	// row's ratios compare with. Default DefaultBaseline.
	Baseline string `json:"baseline,omitempty"`
	// Rows are kept in the order added; renderers group them by scenario,
	// in the order each scenario first appears.
	Rows []Row `json:"rows"`
	// Notes are plain sentences for the reader, such as
	// "varnish: not installed, row missing".
	Notes []string `json:"notes,omitempty"`
	// Checks are acceptance criteria judged on the rows, PASS or FAIL.
	Checks []Check `json:"checks,omitempty"`
}

// Row is one target under one scenario. Latencies are in milliseconds, the
// unit people read them in.
type Row struct {
	Target   string `json:"target"`   // "origin", "sheepdog", "nginx", "varnish", …
	Scenario string `json:"scenario"` // "browse", "herd", …
	Mode     string `json:"mode,omitempty"`
	// Seconds is how long the row's run lasted.
	Seconds float64 `json:"seconds"`
	// Served counts requests answered to the load generator.
	Served uint64 `json:"served"`
	// Throughput is answers per second.
	Throughput float64 `json:"throughput"`
	Latency    Latency `json:"latency_ms"`
	// Latency2xx is Latency over the 2xx answers only; nil where the run
	// did not measure it apart.
	Latency2xx *Latency `json:"latency_2xx_ms,omitempty"`
	// Status counts answers by class: "2xx", "5xx", ….
	Status map[string]uint64 `json:"status,omitempty"`
	// Errors counts requests without an answer by kind: "timeout",
	// "refused", "reset", "other".
	Errors map[string]uint64 `json:"errors,omitempty"`
	// Dropped counts open-loop arrivals the target had no room for.
	Dropped uint64 `json:"dropped,omitempty"`
	// Upstream counts the requests that reached the origin while the row
	// ran; nil when not measured.
	Upstream *uint64 `json:"upstream,omitempty"`
	// Batches and BatchedItems count the write batches the proxy flushed
	// and the items in them; zero where nothing was batched.
	Batches      uint64 `json:"batches,omitempty"`
	BatchedItems uint64 `json:"batched_items,omitempty"`
	// Kinds breaks the row down by kind of request (reads, writes).
	Kinds []Kind `json:"kinds,omitempty"`
	// Series is throughput and p99 per second, for the charts.
	Series []Point `json:"series,omitempty"`

	// VsBaseline compares the row with the baseline row of its scenario.
	// It is derived: every renderer recomputes it from the rows.
	VsBaseline *Ratio `json:"vs_baseline,omitempty"`
}

// Latency is a row's headline latencies, in milliseconds.
type Latency struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

// Kind is the share of a row of one kind of request.
type Kind struct {
	Kind    string            `json:"kind"`
	Served  uint64            `json:"served"`
	Latency Latency           `json:"latency_ms"`
	Errors  map[string]uint64 `json:"errors,omitempty"`
}

// Point is one second of a row.
type Point struct {
	At         float64 `json:"at"` // seconds from the start
	Throughput float64 `json:"throughput"`
	P99        float64 `json:"p99_ms"`
}

// Ratio is a row's figures divided by its baseline's: Throughput above 1
// and P99 below 1 are better than the baseline.
type Ratio struct {
	Throughput float64 `json:"throughput"`
	P99        float64 `json:"p99"`
}

// Count makes the pointer Row.Upstream wants.
func Count(n uint64) *uint64 { return &n }

// NewRow turns one load run into a row. The caller adds what the load
// generator cannot see: Upstream and the batch counts.
func NewRow(target, scenario string, res *load.Result) Row {
	row := Row{
		Target:     target,
		Scenario:   scenario,
		Mode:       res.Mode,
		Seconds:    res.Elapsed.Seconds(),
		Served:     res.Answered,
		Throughput: res.Throughput,
		Latency:    latencyOf(res.Latency),
		Status:     res.Status.ByClass(),
		Errors:     res.Errors.ByName(),
		Dropped:    res.Dropped,
	}
	if res.Latency2xx.Count > 0 {
		l := latencyOf(res.Latency2xx)
		row.Latency2xx = &l
	}
	for _, k := range res.Kinds {
		row.Kinds = append(row.Kinds, Kind{
			Kind:    k.Kind,
			Served:  k.Answered,
			Latency: latencyOf(k.Latency),
			Errors:  k.Errors.ByName(),
		})
	}
	for _, s := range res.Series {
		row.Series = append(row.Series, Point{At: s.At.Seconds(), Throughput: s.Throughput, P99: ms(s.P99)})
	}
	return row
}

func latencyOf(s load.Summary) Latency {
	return Latency{Mean: ms(s.Mean), P50: ms(s.P50), P95: ms(s.P95), P99: ms(s.P99), P999: ms(s.P999), Max: ms(s.Max)}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Add appends rows.
func (r *Report) Add(rows ...Row) { r.Rows = append(r.Rows, rows...) }

// Note appends a note for the reader.
func (r *Report) Note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// ErrorTotal is the number of requests in the row that got no answer.
func (row *Row) ErrorTotal() uint64 {
	var n uint64
	for _, v := range row.Errors {
		n += v
	}
	return n
}

// UpstreamPerServed is how many requests reached the origin per request
// served: below 1, the proxy spared the origin. ok is false when Upstream
// was not measured or nothing was served.
func (row *Row) UpstreamPerServed() (ratio float64, ok bool) {
	if row.Upstream == nil || row.Served == 0 {
		return 0, false
	}
	return float64(*row.Upstream) / float64(row.Served), true
}

// MeanBatch is the mean number of items per batch; 0 without batches.
func (row *Row) MeanBatch() float64 {
	if row.Batches == 0 {
		return 0
	}
	return float64(row.BatchedItems) / float64(row.Batches)
}

// scenario is the rows of one scenario, in the order they were added.
type scenario struct {
	name string
	rows []Row
}

// scenarios groups the rows by scenario, in order of first appearance, and
// fills each row's VsBaseline. It works on copies: the Report is unchanged.
func (r *Report) scenarios() []scenario {
	baseline := cmp.Or(r.Baseline, DefaultBaseline)
	var out []scenario
	for _, row := range r.Rows {
		i := slices.IndexFunc(out, func(s scenario) bool { return s.name == row.Scenario })
		if i < 0 {
			out = append(out, scenario{name: row.Scenario})
			i = len(out) - 1
		}
		out[i].rows = append(out[i].rows, row)
	}
	for _, s := range out {
		i := slices.IndexFunc(s.rows, func(row Row) bool { return row.Target == baseline })
		for j := range s.rows {
			s.rows[j].VsBaseline = nil
			if i >= 0 {
				s.rows[j].VsBaseline = ratio(&s.rows[j], &s.rows[i])
			}
		}
	}
	return out
}

// withRatios is the Report as renderers show it: rows grouped by scenario,
// ratios filled in.
func (r *Report) withRatios() Report {
	out := *r
	out.Rows = nil
	for _, s := range r.scenarios() {
		out.Rows = append(out.Rows, s.rows...)
	}
	return out
}

func ratio(row, base *Row) *Ratio {
	return &Ratio{Throughput: divide(row.Throughput, base.Throughput), P99: divide(row.Latency.P99, base.Latency.P99)}
}

// divide answers 0 rather than Inf or NaN when the baseline is 0.
func divide(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
