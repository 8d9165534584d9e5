package report

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// column is one column of the text table.
type column struct {
	head  string
	right bool // numbers align right
	cell  func(Row) string
}

func (r *Report) columns() []column {
	vs := "vs " + cmp.Or(r.Baseline, DefaultBaseline)
	return []column{
		{"scenario", false, func(row Row) string { return row.Scenario }},
		{"target", false, func(row Row) string { return row.Target }},
		{"mode", false, func(row Row) string { return row.Mode }},
		{"served", true, func(row Row) string { return strconv.FormatUint(row.Served, 10) }},
		{"req/s", true, func(row Row) string { return strconv.FormatFloat(row.Throughput, 'f', 0, 64) }},
		{vs, true, func(row Row) string {
			if row.VsBaseline == nil {
				return "-"
			}
			return strconv.FormatFloat(row.VsBaseline.Throughput, 'f', 2, 64) + "x"
		}},
		{"p50", true, func(row Row) string { return Millis(row.Latency.P50) }},
		{"p95", true, func(row Row) string { return Millis(row.Latency.P95) }},
		{"p99", true, func(row Row) string { return Millis(row.Latency.P99) }},
		{"p99.9", true, func(row Row) string { return Millis(row.Latency.P999) }},
		{"max", true, func(row Row) string { return Millis(row.Latency.Max) }},
		{"upstream", true, func(row Row) string {
			if row.Upstream == nil {
				return "-"
			}
			return strconv.FormatUint(*row.Upstream, 10)
		}},
		{"batches (mean)", true, func(row Row) string {
			if row.Batches == 0 {
				return "-"
			}
			return fmt.Sprintf("%d (%.1f)", row.Batches, row.MeanBatch())
		}},
		{"errors", false, func(row Row) string { return failures(row) }},
	}
}

// failures lists a row's errors by kind, then its drops: "reset=2 timeout=1".
func failures(row Row) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(row.Errors)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, row.Errors[k]))
	}
	if row.Dropped > 0 {
		parts = append(parts, fmt.Sprintf("dropped=%d", row.Dropped))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

// Millis prints a latency given in milliseconds with three significant
// digits and a unit people read at a glance: 87µs, 1.25ms, 20.1ms, 512ms,
// 12.5s.
func Millis(v float64) string {
	switch {
	case v <= 0:
		return "0"
	case v < 1:
		return strconv.FormatFloat(v*1000, 'f', 0, 64) + "µs"
	case v < 10:
		return strconv.FormatFloat(v, 'f', 2, 64) + "ms"
	case v < 100:
		return strconv.FormatFloat(v, 'f', 1, 64) + "ms"
	case v < 10000:
		return strconv.FormatFloat(v, 'f', 0, 64) + "ms"
	default:
		return strconv.FormatFloat(v/1000, 'f', 1, 64) + "s"
	}
}

// cells is the table as text: the header, then one line per row.
func (r *Report) cells() ([]column, [][]string) {
	cols := r.columns()
	head := make([]string, len(cols))
	for i, c := range cols {
		head[i] = c.head
	}
	lines := [][]string{head}
	for _, row := range r.withRatios().Rows {
		line := make([]string, len(cols))
		for i, c := range cols {
			line[i] = c.cell(row)
		}
		lines = append(lines, line)
	}
	return cols, lines
}

// WriteTable writes the rows as a plain-text table with aligned columns,
// grouped by scenario, then the checks, if any, then the notes.
func (r *Report) WriteTable(w io.Writer) error {
	cols, lines := r.cells()
	right := make([]bool, len(cols))
	for i, c := range cols {
		right[i] = c.right
	}
	var b strings.Builder
	writeAligned(&b, right, lines)
	r.writeChecks(&b)
	for _, n := range r.Notes {
		b.WriteString("note: " + n + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeAligned writes lines as columns two blanks apart: right-aligned
// where right says so, left-aligned elsewhere, with no trailing blanks.
func writeAligned(b *strings.Builder, right []bool, lines [][]string) {
	width := make([]int, len(right))
	for _, line := range lines {
		for i, cell := range line {
			width[i] = max(width[i], utf8.RuneCountInString(cell))
		}
	}
	for _, line := range lines {
		for i, cell := range line {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(cell))
			if i > 0 {
				b.WriteString("  ")
			}
			switch {
			case right[i]:
				b.WriteString(pad + cell)
			case i < len(line)-1:
				b.WriteString(cell + pad)
			default:
				b.WriteString(cell) // no trailing blanks
			}
		}
		b.WriteByte('\n')
	}
}
