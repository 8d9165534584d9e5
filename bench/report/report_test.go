package report

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/style-shepherd/sheepdog/bench/load"
)

// sample is a small report: browse through three targets, herd through two
// (no origin row, so no ratios), with a note.
func sample() *Report {
	r := &Report{Title: "bench", Command: "go run ./bench -quick"}
	series := func(rates ...float64) []Point {
		var out []Point
		for i, v := range rates {
			out = append(out, Point{At: float64(i), Throughput: v, P99: 1})
		}
		return out
	}
	r.Add(
		Row{Target: "origin", Scenario: "browse", Mode: "closed", Seconds: 2, Served: 4000, Throughput: 2000,
			Latency:  Latency{Mean: 20.5, P50: 20.1, P95: 21.7, P99: 24, P999: 30.26, Max: 41},
			Upstream: Count(4000), Series: series(1900, 2100)},
		Row{Target: "sheepdog", Scenario: "browse", Mode: "closed", Seconds: 2, Served: 100000, Throughput: 50000,
			Latency:  Latency{Mean: 0.5, P50: 0.087, P95: 0.9, P99: 1.254, P999: 4, Max: 21.5},
			Upstream: Count(100), Errors: map[string]uint64{"timeout": 1, "reset": 2}, Series: series(49000, 51000),
			Kinds: []Kind{
				{Kind: "read", Served: 90000, Latency: Latency{P50: 0.08, P99: 1.2, Max: 21.5}},
				{Kind: "write", Served: 10000, Latency: Latency{P50: 2, P99: 3, Max: 4}, Errors: map[string]uint64{"reset": 2}},
			}},
		Row{Target: "herd-proxy", Scenario: "herd", Mode: "open", Seconds: 1, Served: 200, Throughput: 200,
			Latency: Latency{P50: 21, P99: 22, Max: 12500}, Dropped: 3},
		Row{Target: "nginx", Scenario: "browse", Mode: "closed", Seconds: 2, Served: 60000, Throughput: 30000,
			Latency: Latency{P50: 0.5, P95: 2, P99: 4.5, P999: 9, Max: 12}, Series: series(30000, 30000)},
		Row{Target: "sheepdog", Scenario: "herd", Mode: "open", Seconds: 1, Served: 200, Throughput: 200,
			Latency: Latency{P50: 21, P99: 22, Max: 23}, Batches: 4, BatchedItems: 50},
	)
	r.Note("varnish: not installed, row missing")
	return r
}

func TestTable(t *testing.T) {
	var b bytes.Buffer
	if err := sample().WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	want := `scenario  target      mode    served  req/s  vs origin     p50     p95     p99   p99.9     max  upstream  batches (mean)  errors
browse    origin      closed    4000   2000      1.00x  20.1ms  21.7ms  24.0ms  30.3ms  41.0ms      4000               -  -
browse    sheepdog    closed  100000  50000     25.00x    87µs   900µs  1.25ms  4.00ms  21.5ms       100               -  reset=2 timeout=1
browse    nginx       closed   60000  30000     15.00x   500µs  2.00ms  4.50ms  9.00ms  12.0ms         -               -  -
herd      herd-proxy  open       200    200          -  21.0ms       0  22.0ms       0   12.5s         -               -  dropped=3
herd      sheepdog    open       200    200          -  21.0ms       0  22.0ms       0  23.0ms         -        4 (12.5)  -
note: varnish: not installed, row missing
`
	if got := b.String(); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
}

func TestTableHasNoTrailingBlanksAndAlignsColumns(t *testing.T) {
	var b bytes.Buffer
	if err := sample().WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	// The right edge of "p99" in the header is the right edge of every p99 cell.
	edge := strings.Index(lines[0], " p99 ") + len(" p99")
	for _, l := range lines {
		if strings.HasSuffix(l, " ") {
			t.Errorf("trailing blank: %q", l)
		}
		if strings.HasPrefix(l, "note:") {
			continue
		}
		if r := []rune(l); len(r) < edge || r[edge-1] == ' ' || r[edge] != ' ' {
			t.Errorf("p99 column not aligned at %d in %q", edge, l)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	var first bytes.Buffer
	r := sample()
	if err := r.WriteJSON(&first); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(bytes.NewReader(first.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	want := r.withRatios()
	if !reflect.DeepEqual(*back, want) {
		t.Errorf("read back:\n%+v\nwant:\n%+v", *back, want)
	}
	var second bytes.Buffer
	if err := back.WriteJSON(&second); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Bytes(), second.Bytes()) {
		t.Errorf("writing what was read changed it:\n%s\nthen:\n%s", first.String(), second.String())
	}
	for _, want := range []string{`"target": "sheepdog"`, `"p99": 1.254`, `"upstream": 100`, `"throughput": 25`, `"timeout": 1`} {
		if !strings.Contains(first.String(), want) {
			t.Errorf("json lacks %s", want)
		}
	}
	if _, err := ReadJSON(strings.NewReader("{not json")); err == nil {
		t.Error("ReadJSON accepted broken JSON")
	}
}

func TestHTMLDrawsOneChartPerScenarioAndFigure(t *testing.T) {
	var b bytes.Buffer
	r := sample()
	if err := r.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	html := b.String()

	charts := regexp.MustCompile(`(?s)<svg [^>]*data-chart="(\w+)".*?</svg>`).FindAllStringSubmatch(html, -1)
	if got := strings.Count(html, "<svg"); got != 4 || len(charts) != 4 {
		t.Fatalf("%d <svg> (%d complete charts), want 4: two scenarios, two charts each", got, len(charts))
	}
	tests := []struct {
		chart   int
		kind    string
		targets []string
		missing []string
	}{
		{0, "latency", []string{"origin", "sheepdog", "nginx"}, []string{"herd-proxy"}},
		{1, "throughput", []string{"origin", "sheepdog", "nginx"}, []string{"herd-proxy"}},
		{2, "latency", []string{"herd-proxy", "sheepdog"}, []string{"origin", "nginx"}},
		{3, "throughput", nil, []string{"origin", "sheepdog"}}, // herd rows have no series
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			c := charts[tt.chart]
			if c[1] != tt.kind {
				t.Fatalf("chart %d is %q, want %q", tt.chart, c[1], tt.kind)
			}
			for _, target := range tt.targets {
				if !strings.Contains(c[0], `<g class="series" data-target="`+target+`"`) {
					t.Errorf("chart %d has no series for %s", tt.chart, target)
				}
			}
			for _, target := range tt.missing {
				if strings.Contains(c[0], `data-target="`+target+`"`) {
					t.Errorf("chart %d has a series for %s, which is not in its scenario", tt.chart, target)
				}
			}
		})
	}
	if !strings.Contains(charts[3][0], "no time series recorded") {
		t.Error("an empty throughput chart does not say so")
	}
	// Five percentile bars for each browse target in the latency chart.
	if got := strings.Count(charts[0][0], "<rect x"); got < 15 {
		t.Errorf("%d marks in the browse latency chart, want 15 bars and a legend", got)
	}
	// Two points per series in the browse throughput chart.
	if got := strings.Count(charts[1][0], "<polyline"); got != 3 {
		t.Errorf("%d lines in the browse throughput chart, want 3", got)
	}
	for _, bad := range []string{"http://", "https://", "src=", "href=", "url(", "@import", "<script", "<link"} {
		if strings.Contains(html, bad) {
			t.Errorf("the page contains %q: it must load nothing", bad)
		}
	}
	for _, want := range []string{"<title>bench</title>", "varnish: not installed, row missing", "go run ./bench -quick", "25.00x"} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	var again bytes.Buffer
	if err := r.WriteHTML(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), again.Bytes()) {
		t.Error("two renderings of the same report differ")
	}
}

func TestHTMLEscapesText(t *testing.T) {
	r := &Report{Title: `<b>"x"</b>`}
	r.Add(Row{Target: `<script>alert(1)</script>`, Scenario: `a&b`, Served: 1, Throughput: 1,
		Latency: Latency{P50: 1, P99: 2, Max: 3}, Series: []Point{{At: 0, Throughput: 1}}})
	r.Note(`<img src=x>`)
	var b bytes.Buffer
	if err := r.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	for _, bad := range []string{"<script>", "<img", "<b>", "a&b"} {
		if strings.Contains(html, bad) {
			t.Errorf("unescaped %q in page", bad)
		}
	}
	if !strings.Contains(html, "&lt;script&gt;") {
		t.Error("the target's name is missing, escaped")
	}
}

func TestNewRowFromALoadResult(t *testing.T) {
	h := new(load.Histogram)
	for _, d := range []time.Duration{time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond} {
		h.Record(d)
	}
	ok := new(load.Histogram) // the two 2xx answers
	ok.Record(time.Millisecond)
	ok.Record(2 * time.Millisecond)
	res := &load.Result{
		Mode: load.ModeOpen, Elapsed: 1500 * time.Millisecond, Answered: 3, Throughput: 2,
		Errors: load.ErrorCounts{load.Timeout: 1}, Dropped: 4, Status: load.StatusCounts{2: 2, 5: 1},
		Latency: h.Summary(), Latency2xx: ok.Summary(), Histogram: h,
		Kinds:  []load.KindResult{{Kind: "read", Answered: 3, Latency: h.Summary(), Errors: load.ErrorCounts{load.Timeout: 1}}},
		Series: []load.Second{{At: time.Second, Answered: 3, Throughput: 3, P99: 3 * time.Millisecond}},
	}
	row := NewRow("sheepdog", "browse", res)
	okLatency := latencyOf(ok.Summary())
	want := Row{
		Target: "sheepdog", Scenario: "browse", Mode: "open", Seconds: 1.5, Served: 3, Throughput: 2,
		Latency: latencyOf(h.Summary()), Latency2xx: &okLatency,
		Status: map[string]uint64{"2xx": 2, "5xx": 1}, Errors: map[string]uint64{"timeout": 1}, Dropped: 4,
		Kinds:  []Kind{{Kind: "read", Served: 3, Latency: latencyOf(h.Summary()), Errors: map[string]uint64{"timeout": 1}}},
		Series: []Point{{At: 1, Throughput: 3, P99: 3}},
	}
	if !reflect.DeepEqual(row, want) {
		t.Errorf("row\n%+v\nwant\n%+v", row, want)
	}
	if row.Latency.Max != 3 || row.Latency.Mean != 2 {
		t.Errorf("latency %+v, want max 3 and mean 2 (ms)", row.Latency)
	}
}

func TestRowFigures(t *testing.T) {
	tests := []struct {
		name      string
		row       Row
		perServed float64
		measured  bool
		mean      float64
	}{
		{"nothing measured", Row{Served: 10}, 0, false, 0},
		{"cache spares the origin", Row{Served: 1000, Upstream: Count(10), Batches: 4, BatchedItems: 10}, 0.01, true, 2.5},
		{"nothing served", Row{Upstream: Count(3)}, 0, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.row.UpstreamPerServed()
			if got != tt.perServed || ok != tt.measured {
				t.Errorf("UpstreamPerServed = %v, %v; want %v, %v", got, ok, tt.perServed, tt.measured)
			}
			if got := tt.row.MeanBatch(); got != tt.mean {
				t.Errorf("MeanBatch = %v, want %v", got, tt.mean)
			}
		})
	}
}

func TestMillis(t *testing.T) {
	tests := []struct {
		ms   float64
		want string
	}{
		{0, "0"}, {0.0874, "87µs"}, {1.254, "1.25ms"}, {20.14, "20.1ms"}, {512.4, "512ms"}, {12500, "12.5s"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := Millis(tt.ms); got != tt.want {
				t.Errorf("Millis(%v) = %q, want %q", tt.ms, got, tt.want)
			}
		})
	}
}

func TestDecade(t *testing.T) {
	tests := []struct {
		exp  float64
		want string
	}{{-4, "0.1µs"}, {-2, "10µs"}, {-1, "100µs"}, {0, "1ms"}, {2, "100ms"}, {3, "1s"}, {4, "10s"}}
	for _, tt := range tests {
		if got := decade(tt.exp); got != tt.want {
			t.Errorf("decade(%v) = %q, want %q", tt.exp, got, tt.want)
		}
	}
}

func TestRoundUp(t *testing.T) {
	tests := []struct{ in, want float64 }{{0, 1}, {0.3, 0.5}, {1, 1}, {1.1, 2}, {3, 5}, {7, 10}, {51000, 100000}}
	for _, tt := range tests {
		if got := roundUp(tt.in); got != tt.want {
			t.Errorf("roundUp(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestSaveWritesTheFilesAsked(t *testing.T) {
	dir := t.TempDir()
	jsonPath, htmlPath := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.html")
	if err := sample().Save(jsonPath, htmlPath); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{jsonPath, htmlPath} {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", p, err)
		}
	}
	if err := sample().Save(filepath.Join(dir, "missing", "r.json"), ""); err == nil {
		t.Error("Save into a missing folder succeeded")
	}
}
