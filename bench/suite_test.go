package main

import (
	"testing"

	"github.com/style-shepherd/sheepdog/bench/load"
	"github.com/style-shepherd/sheepdog/bench/report"
)

func TestUnexpectedAnswersAreNamedByKind(t *testing.T) {
	tests := []struct {
		name  string
		kinds []load.KindResult
		want  string
	}{
		{"all 2xx", []load.KindResult{{Kind: "products", Status: load.StatusCounts{2: 10}}}, ""},
		{"5xx and 4xx", []load.KindResult{
			{Kind: "store-memory", Status: load.StatusCounts{2: 10, 5: 4}},
			{Kind: "create-order", Status: load.StatusCounts{2: 3, 4: 1, 5: 3}},
		}, "write-burst · sheepdog: answers other than 2xx: create-order 4xx=1, create-order 5xx=3, store-memory 5xx=4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := unexpectedAnswers("write-burst · sheepdog", &load.Result{Kinds: tt.kinds}); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFailuresNameRowsWithErrorsOrUnexpectedAnswers(t *testing.T) {
	rows := []report.Row{
		{Scenario: "browse", Target: "origin", Status: map[string]uint64{"2xx": 10}},
		{Scenario: "browse", Target: "sheepdog", Status: map[string]uint64{"2xx": 8, "5xx": 2}, Errors: map[string]uint64{"timeout": 1}},
		{Scenario: "herd", Target: "nginx", Errors: map[string]uint64{"reset": 3}},
	}
	got := failures(rows)
	want := []string{"browse/sheepdog: 5xx=2 timeout=1", "herd/nginx: reset=3"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("failures = %q, want %q", got, want)
	}
}
