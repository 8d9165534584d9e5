package report

import (
	"cmp"
	"fmt"
	"html/template"
	"io"
)

// page is what the HTML template reads.
type page struct {
	Title     string
	Command   string
	Notes     []string
	Head      []string
	Right     []bool
	Lines     [][]string
	Checks    []Check
	Scenarios []chartSection
}

// chartSection is one scenario's charts and per-kind breakdown.
type chartSection struct {
	Name       string
	Latency    template.HTML
	Throughput template.HTML
	Kinds      [][]string
}

var pageTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Title}}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #ddd; text-align: left; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #8a4b00; }
svg.chart { display: block; margin: 1em 0; max-width: 100%; height: auto; }
svg .title { font-weight: bold; font-size: 14px; }
svg .tick, svg .legend, svg .empty { font-size: 11px; fill: #444; }
svg .grid { stroke: #e5e5e5; }
svg .axis { stroke: #888; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
{{with .Command}}<p>Command: <code>{{.}}</code></p>{{end}}
{{range .Notes}}<p class="note">{{.}}</p>
{{end}}<table>
<tr>{{range $i, $h := .Head}}<th{{if index $.Right $i}} class="num"{{end}}>{{$h}}</th>{{end}}</tr>
{{range .Lines}}<tr>{{range $i, $c := .}}<td{{if index $.Right $i}} class="num"{{end}}>{{$c}}</td>{{end}}</tr>
{{end}}</table>
{{with .Checks}}<table>
<tr><th>check</th><th class="num">measured</th><th>limit</th><th>verdict</th></tr>
{{range .}}<tr><td>{{.Criterion}}</td><td class="num">{{.Measured}}</td><td>{{.Limit}}</td><td>{{.Verdict}}</td></tr>
{{end}}</table>
{{end}}{{range .Scenarios}}<section>
<h2>{{.Name}}</h2>
{{.Latency}}
{{.Throughput}}
{{with .Kinds}}<table>
<tr><th>target</th><th>kind</th><th class="num">served</th><th class="num">p50</th><th class="num">p99</th><th class="num">max</th><th>errors</th></tr>
{{range .}}<tr>{{range $i, $c := .}}<td{{if and (ge $i 2) (le $i 5)}} class="num"{{end}}>{{$c}}</td>{{end}}</tr>
{{end}}</table>
{{end}}</section>
{{end}}</body>
</html>
`))

// WriteHTML writes the report as one self-contained HTML page: the table,
// the notes, and for each scenario a latency-percentile chart and a
// throughput-over-time chart in inline SVG. It loads nothing from anywhere.
func (r *Report) WriteHTML(w io.Writer) error {
	cols, lines := r.cells()
	p := page{
		Title:   cmp.Or(r.Title, "Sheepdog bench"),
		Command: r.Command,
		Notes:   r.Notes,
		Head:    lines[0],
		Lines:   lines[1:],
		Checks:  r.Checks,
	}
	for _, c := range cols {
		p.Right = append(p.Right, c.right)
	}
	colors := newPalette(r.Rows)
	for _, s := range r.scenarios() {
		sec := chartSection{
			Name:       s.name,
			Latency:    latencyChart(s.name+": latency percentiles", s.rows, colors),
			Throughput: throughputChart(s.name+": throughput over time", s.rows, colors),
		}
		for _, row := range s.rows {
			if len(row.Kinds) < 2 {
				continue
			}
			for _, k := range row.Kinds {
				sec.Kinds = append(sec.Kinds, []string{
					row.Target, k.Kind, fmt.Sprint(k.Served),
					Millis(k.Latency.P50), Millis(k.Latency.P99), Millis(k.Latency.Max),
					failures(Row{Errors: k.Errors}),
				})
			}
		}
		p.Scenarios = append(p.Scenarios, sec)
	}
	if err := pageTemplate.Execute(w, p); err != nil {
		return fmt.Errorf("report html: %w", err)
	}
	return nil
}
