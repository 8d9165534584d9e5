package report

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
)

// The charts are hand-written SVG: no script, no external asset, and the
// same rows always give the same bytes. Every piece of text goes through
// esc. Each target's marks sit in <g class="series" data-target="NAME">.

// Chart geometry, in SVG user units.
const (
	chartW   = 720
	chartH   = 300
	padLeft  = 64
	padRight = 130 // room for the legend
	padTop   = 28
	padBot   = 40
	plotW    = chartW - padLeft - padRight
	plotH    = chartH - padTop - padBot
)

// Colours of the well-known targets; any other takes the next of others.
var (
	knownColors = map[string]string{
		"origin":   "#7f7f7f",
		"sheepdog": "#1f77b4",
		"nginx":    "#2ca02c",
		"varnish":  "#9467bd",
	}
	otherColors = []string{"#ff7f0e", "#d62728", "#8c564b", "#e377c2", "#17becf", "#bcbd22"}
)

// palette gives each target of a report its colour, stable across charts.
type palette map[string]string

func newPalette(rows []Row) palette {
	p := palette{}
	next := 0
	for _, row := range rows {
		if _, ok := p[row.Target]; ok {
			continue
		}
		if c, ok := knownColors[row.Target]; ok {
			p[row.Target] = c
			continue
		}
		p[row.Target] = otherColors[next%len(otherColors)]
		next++
	}
	return p
}

func esc(s string) string { return template.HTMLEscapeString(s) }

// num prints a coordinate with one decimal, the same way every time.
func num(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// svg accumulates one chart.
type svg struct {
	b strings.Builder
}

func newSVG(kind, title string) *svg {
	s := &svg{}
	fmt.Fprintf(&s.b, `<svg class="chart" data-chart="%s" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">`,
		esc(kind), chartW, chartH, chartW, chartH, esc(title))
	s.text(padLeft, 16, "title", title)
	return s
}

func (s *svg) text(x, y float64, class, t string) {
	fmt.Fprintf(&s.b, `<text x="%s" y="%s" class="%s">%s</text>`, num(x), num(y), esc(class), esc(t))
}

func (s *svg) line(x1, y1, x2, y2 float64, class string) {
	fmt.Fprintf(&s.b, `<line x1="%s" y1="%s" x2="%s" y2="%s" class="%s"/>`, num(x1), num(y1), num(x2), num(y2), esc(class))
}

// legend lists the targets beside the plot, in row order.
func (s *svg) legend(rows []Row, colors palette) {
	for i, row := range rows {
		y := float64(padTop + 14 + i*18)
		fmt.Fprintf(&s.b, `<rect x="%d" y="%s" width="10" height="10" fill="%s"/>`, chartW-padRight+12, num(y-9), colors[row.Target])
		s.text(float64(chartW-padRight+28), y, "legend", row.Target)
	}
}

func (s *svg) html() template.HTML {
	s.b.WriteString(`</svg>`)
	return template.HTML(s.b.String()) // every text and attribute was escaped by esc
}

// percentile is one group of bars in the latency chart.
type percentile struct {
	label string
	of    func(Latency) float64
}

var percentiles = []percentile{
	{"p50", func(l Latency) float64 { return l.P50 }},
	{"p95", func(l Latency) float64 { return l.P95 }},
	{"p99", func(l Latency) float64 { return l.P99 }},
	{"p99.9", func(l Latency) float64 { return l.P999 }},
	{"max", func(l Latency) float64 { return l.Max }},
}

// latencyChart draws, for each percentile, one bar per target, on a log
// scale: a cache hit and a 20 ms origin differ a hundredfold, and both must
// be readable.
func latencyChart(title string, rows []Row, colors palette) template.HTML {
	s := newSVG("latency", title)
	lo, hi := math.Inf(1), 0.0
	for _, row := range rows {
		for _, p := range percentiles {
			if v := p.of(row.Latency); v > 0 {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if hi == 0 {
		s.text(padLeft, padTop+plotH/2, "empty", "no latency recorded")
		return s.html()
	}
	loExp, hiExp := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if hiExp == loExp {
		hiExp++
	}
	y := func(v float64) float64 {
		return padTop + plotH*(1-(math.Log10(v)-loExp)/(hiExp-loExp))
	}
	for e := loExp; e <= hiExp; e++ {
		yy := y(math.Pow(10, e))
		s.line(padLeft, yy, padLeft+plotW, yy, "grid")
		s.text(4, yy+4, "tick", decade(e))
	}
	group := float64(plotW) / float64(len(percentiles))
	bar := group * 0.8 / float64(len(rows))
	for gi, p := range percentiles {
		s.text(padLeft+group*float64(gi)+group/2-12, chartH-padBot+18, "tick", p.label)
	}
	for ri, row := range rows {
		fmt.Fprintf(&s.b, `<g class="series" data-target="%s" fill="%s">`, esc(row.Target), colors[row.Target])
		for gi, p := range percentiles {
			v := p.of(row.Latency)
			if v <= 0 {
				continue
			}
			x := padLeft + group*float64(gi) + group*0.1 + bar*float64(ri)
			top := y(v)
			fmt.Fprintf(&s.b, `<rect x="%s" y="%s" width="%s" height="%s"><title>%s</title></rect>`,
				num(x), num(top), num(bar), num(padTop+plotH-top), esc(row.Target+" "+p.label+": "+Millis(v)))
		}
		s.b.WriteString(`</g>`)
	}
	s.line(padLeft, padTop+plotH, padLeft+plotW, padTop+plotH, "axis")
	s.legend(rows, colors)
	return s.html()
}

// throughputChart draws each target's answers per second over the run.
func throughputChart(title string, rows []Row, colors palette) template.HTML {
	s := newSVG("throughput", title)
	var span, top float64
	for _, row := range rows {
		for _, p := range row.Series {
			span, top = math.Max(span, p.At+1), math.Max(top, p.Throughput)
		}
	}
	if span == 0 {
		s.text(padLeft, padTop+plotH/2, "empty", "no time series recorded")
		return s.html()
	}
	top = roundUp(top)
	x := func(at float64) float64 { return padLeft + plotW*at/span }
	y := func(v float64) float64 { return padTop + plotH*(1-v/top) }
	for i := 0; i <= 4; i++ {
		v := top * float64(i) / 4
		s.line(padLeft, y(v), padLeft+plotW, y(v), "grid")
		s.text(4, y(v)+4, "tick", strconv.FormatFloat(v, 'f', -1, 64)+"/s")
	}
	step := math.Max(1, roundUp(span/8))
	for at := 0.0; at <= span; at += step {
		s.text(x(at)-4, chartH-padBot+18, "tick", strconv.FormatFloat(at, 'f', -1, 64)+"s")
	}
	for _, row := range rows {
		if len(row.Series) == 0 {
			continue
		}
		fmt.Fprintf(&s.b, `<g class="series" data-target="%s" stroke="%s" fill="%s">`, esc(row.Target), colors[row.Target], colors[row.Target])
		// Each second is drawn at its middle, where its rate was measured.
		points := make([]string, len(row.Series))
		for i, p := range row.Series {
			points[i] = num(x(p.At+0.5)) + "," + num(y(p.Throughput))
		}
		fmt.Fprintf(&s.b, `<polyline fill="none" stroke-width="2" points="%s"/>`, strings.Join(points, " "))
		for _, p := range row.Series {
			fmt.Fprintf(&s.b, `<circle cx="%s" cy="%s" r="2.5"><title>%s</title></circle>`, num(x(p.At+0.5)), num(y(p.Throughput)),
				esc(fmt.Sprintf("%s at %ss: %.0f/s, p99 %s", row.Target, strconv.FormatFloat(p.At, 'f', -1, 64), p.Throughput, Millis(p.P99))))
		}
		s.b.WriteString(`</g>`)
	}
	s.line(padLeft, padTop+plotH, padLeft+plotW, padTop+plotH, "axis")
	s.legend(rows, colors)
	return s.html()
}

// decade labels the power of ten 10^e milliseconds: 10µs, 1ms, 10s.
func decade(e float64) string {
	switch {
	case e >= 3:
		return strconv.FormatFloat(math.Pow(10, e-3), 'f', -1, 64) + "s"
	case e >= 0:
		return strconv.FormatFloat(math.Pow(10, e), 'f', -1, 64) + "ms"
	default:
		return strconv.FormatFloat(math.Round(math.Pow(10, e+3)*1000)/1000, 'f', -1, 64) + "µs"
	}
}

// roundUp rounds v up to 1, 2 or 5 times a power of ten, for axis tops.
func roundUp(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}
