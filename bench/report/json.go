package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// WriteJSON writes the report as indented JSON, rows grouped by scenario and
// ratios filled in.
func (r *Report) WriteJSON(w io.Writer) error {
	out := r.withRatios()
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(&out); err != nil {
		return fmt.Errorf("report json: %w", err)
	}
	return nil
}

// ReadJSON reads a report written by WriteJSON.
func ReadJSON(rd io.Reader) (*Report, error) {
	var r Report
	if err := json.NewDecoder(rd).Decode(&r); err != nil {
		return nil, fmt.Errorf("report json: %w", err)
	}
	return &r, nil
}

// Save writes the JSON report to jsonPath and the HTML one to htmlPath,
// skipping either path when it is empty: the bench's -json and -html flags.
func (r *Report) Save(jsonPath, htmlPath string) error {
	var errs []error
	if jsonPath != "" {
		errs = append(errs, writeFile(jsonPath, r.WriteJSON))
	}
	if htmlPath != "" {
		errs = append(errs, writeFile(htmlPath, r.WriteHTML))
	}
	return errors.Join(errs...)
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}
