package configs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads and checks the config file at path, expanding ${NAME}
// references from the process environment. A bad file gives an ErrorList
// naming every problem by file, line and key.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse is Load for a file already in memory; source names it in messages.
func Parse(source string, data []byte) (*Config, error) {
	return ParseWithEnv(source, data, os.LookupEnv)
}

// ParseWithEnv is Parse with ${NAME} references read through lookup
// instead of the process environment.
func ParseWithEnv(source string, data []byte, lookup LookupEnv) (*Config, error) {
	data, refs := protectEnv(data)
	d := &decoder{problems: &problems{file: source, refs: refs}, env: lookup, lines: make(map[string]int),
		unreadable: make(map[string]bool)}
	root, ok := d.document(data)
	if !ok {
		return nil, d.err()
	}
	cfg := Default()
	cfg.Source = source
	if root != nil {
		d.value(root, "", reflect.ValueOf(cfg).Elem())
	}
	for i := range cfg.Routes {
		if b := cfg.Routes[i].Batch; b != nil {
			b.setSinkDefaults()
		}
	}
	validate(cfg, d)
	if err := d.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// document parses data as exactly one YAML document and returns its top
// node, nil for an empty file. ok is false after a syntax error.
func (d *decoder) document(data []byte) (root *yaml.Node, ok bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, true
		}
		d.syntax(err, data)
		return nil, false
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		d.add(next.Line, "", "a config file holds one YAML document; remove this one or the ---")
		return nil, false
	case !errors.Is(err, io.EOF):
		d.syntax(err, data)
		return nil, false
	}
	if len(doc.Content) == 0 {
		return nil, true
	}
	root = doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, true
	}
	return root, true
}

// parserProblems are the messages of yaml.v3's parser errors (parserc.go),
// whose line it reports 0-based; its scanner errors' lines are 1-based.
var parserProblems = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found duplicate %YAML directive":        true,
	"found duplicate %TAG directive":         true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

var (
	syntaxLineRE = regexp.MustCompile(`^yaml: line (\d+): `)
	anchorRE     = regexp.MustCompile(`anchor '([^']*)'`)
)

// syntax reports a YAML syntax error at its line. Most carry the line in
// their text; for the few that name an anchor instead, the anchor's first
// mention is the place to look. Otherwise the error is put on line 1.
func (d *decoder) syntax(err error, data []byte) {
	msg := err.Error()
	line := 1
	if m := syntaxLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
		if parserProblems[msg] {
			// yaml.v3 adds 1 to a scanner error's 0-based mark but not
			// to a parser error's: without this, the line before.
			line++
		}
	} else if m := anchorRE.FindStringSubmatch(msg); m != nil && m[1] != "" {
		for i, text := range strings.Split(string(data), "\n") {
			if strings.Contains(text, "&"+m[1]) || strings.Contains(text, "*"+m[1]) {
				line = i + 1
				break
			}
		}
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	d.add(line, "", "%s", msg)
}
