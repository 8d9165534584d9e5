package configs

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem in a config file, placed at the line an operator
// must edit.
type Error struct {
	// File is the source name given to Parse or the path given to Load.
	File string
	// Line is 1-based; every Error has one.
	Line int
	// Key is the key path in YAML names, such as
	// "routes[2](products).cache.ttl"; empty for a YAML syntax error.
	Key string
	// Msg says what is wrong, and where it helps, what would be right.
	Msg string
}

// Error formats the problem as "<file>:<line>: <key>: <message>".
func (e *Error) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Key, e.Msg)
}

// ErrorList is every problem found in one file, sorted by line. Parse and
// Load return it as their error, so an operator fixes a file in one pass.
type ErrorList []*Error

// Error joins the problems one per line.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find each *Error.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// problems collects errors while a file is decoded and validated.
type problems struct {
	file string
	refs envRefs // the file's ${...}, put back into what a problem quotes
	list ErrorList
	seen map[Error]bool // drops a problem reported twice
}

func (p *problems) add(line int, key, format string, args ...any) {
	if line < 1 {
		line = 1
	}
	e := Error{File: p.file, Line: line, Key: p.refs.restore(key), Msg: p.refs.restore(fmt.Sprintf(format, args...))}
	if p.seen[e] {
		return
	}
	if p.seen == nil {
		p.seen = make(map[Error]bool)
	}
	p.seen[e] = true
	p.list = append(p.list, &e)
}

// err returns the sorted list, or nil when there is nothing to report.
func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	sort.SliceStable(p.list, func(i, j int) bool { return p.list[i].Line < p.list[j].Line })
	return p.list
}
