package configs

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParse feeds arbitrary files to the loader: it must never panic, every
// problem must carry the file and a line inside it, and a file it accepts
// must hold only routes the proxy can compile.
func FuzzParse(f *testing.F) {
	for _, name := range ExampleNames() {
		data, err := ExampleFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, seed := range []string{
		head + catchAll,
		head + "  - {name: p, match: {path: \"/u/{id}\"}, cache: {ttl: 1s, tags: [\"u:{path.id}\"], key: {body: [q=]}}}\n",
		head + "  - {name: w, match: {method: POST, path: /w}, batch: {sink: valkey, key: \"${X:-k}\", value: \"{body.v}\"}}\n",
		"upstream: &a {url: x}\nadmin: *a\n",
		"a: [\n",
		"---\n---\n",
		"routes:\n- !!binary x\n",
		"<<: {listen: x}\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseWithEnv("fuzz.yaml", data, noEnv)
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error is not a non-empty ErrorList: %v", err)
			}
			lines := yamlLines(data)
			for _, e := range list {
				if e.File != "fuzz.yaml" || e.Line < 1 || e.Line > lines {
					t.Fatalf("problem without a place in the file (%d lines): %#v", lines, e)
				}
			}
			return
		}
		for _, r := range cfg.Routes {
			if r.Match.Path != "" {
				if _, err := ParsePath(r.Match.Path); err != nil {
					t.Fatalf("accepted route %q with a bad path: %v", r.Name, err)
				}
			}
			if n := btoi(r.Cache != nil) + btoi(r.Batch != nil) + btoi(r.Pass != nil); n != 1 {
				t.Fatalf("accepted route %q with %d actions", r.Name, n)
			}
		}
		_ = cfg.RouteTable()
	})
}

// yamlLines is an upper bound on the lines YAML sees in data: it breaks
// lines at \n, at a lone \r, and at NEL, LS and PS.
func yamlLines(data []byte) int {
	n := 1
	for _, brk := range []string{"\n", "\r", "\u0085", "\u2028", "\u2029"} {
		n += bytes.Count(data, []byte(brk))
	}
	return n
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
