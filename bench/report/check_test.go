package report

import (
	"bytes"
	"strings"
	"testing"
)

func TestChecksRender(t *testing.T) {
	r := Report{Rows: []Row{{Target: "batched", Scenario: "postgres/64", Throughput: 30000}}}
	r.AddCheck(Check{Criterion: "postgres/64: batched ÷ single", Measured: "6.00x", Limit: "≥ 5x", Pass: true})
	r.AddCheck(Check{Criterion: "valkey/64: batched ÷ redis-benchmark -P 16", Measured: "0.05x", Limit: "≥ 0.5x"})

	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"check                                       measured  limit   verdict\n",
		"postgres/64: batched ÷ single                  6.00x  ≥ 5x    PASS\n",
		"valkey/64: batched ÷ redis-benchmark -P 16     0.05x  ≥ 0.5x  FAIL\n",
		"1 of 2 checks pass\n",
	} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}

	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(&js)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Checks) != 2 || back.Checks[0] != r.Checks[0] || back.Checks[1].Verdict() != "FAIL" {
		t.Errorf("checks after JSON: %+v", back.Checks)
	}

	var page bytes.Buffer
	if err := r.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page.String(), "<td>postgres/64: batched ÷ single</td><td class=\"num\">6.00x</td>") {
		t.Errorf("HTML lacks the checks")
	}
}
