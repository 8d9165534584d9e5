package report

import (
	"fmt"
	"strings"
)

// Check is one acceptance criterion judged on a run's rows, such as
// "postgres, 64 writers: batched ÷ single ≥ 5". The bench prints it and
// saves it, but never fails a run because of it: speed on a shared machine
// is a figure to read, not an error.
type Check struct {
	// Criterion says what is compared with what.
	Criterion string `json:"criterion"`
	// Measured and Limit are the two sides, as people read them: "7.41x"
	// and "≥ 5x", or "3.10ms" and "≤ 2ms + 1.05ms = 3.05ms".
	Measured string `json:"measured"`
	Limit    string `json:"limit"`
	Pass     bool   `json:"pass"`
}

// Verdict is "PASS" or "FAIL".
func (c Check) Verdict() string {
	if c.Pass {
		return "PASS"
	}
	return "FAIL"
}

// AddCheck appends a check.
func (r *Report) AddCheck(c Check) { r.Checks = append(r.Checks, c) }

// writeChecks writes the checks as an aligned table: criterion, measured,
// limit, verdict.
func (r *Report) writeChecks(b *strings.Builder) {
	if len(r.Checks) == 0 {
		return
	}
	lines := [][]string{{"check", "measured", "limit", "verdict"}}
	for _, c := range r.Checks {
		lines = append(lines, []string{c.Criterion, c.Measured, c.Limit, c.Verdict()})
	}
	b.WriteByte('\n')
	writeAligned(b, []bool{false, true, false, false}, lines)
	passed := 0
	for _, c := range r.Checks {
		if c.Pass {
			passed++
		}
	}
	fmt.Fprintf(b, "%d of %d checks pass\n", passed, len(r.Checks))
}
