package configs

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// LookupEnv finds an environment variable; os.LookupEnv is the one Load
// uses. Tests pass their own so they never touch the process environment.
type LookupEnv func(name string) (value string, ok bool)

// expand replaces ${NAME} and ${NAME:-default} in one scalar with values
// from lookup; "$${" stands for a literal "${". It runs on scalars after
// YAML parsing, so a value can never add YAML structure or move a line.
// As in the shell, ":-" takes the default when NAME is unset or empty.
// A "$" not followed by "{" is kept as it is.
func expand(s string, lookup LookupEnv) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' {
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated %q: close it with }", s[i:])
		}
		ref := s[i+2 : i+end]
		s = s[i+end+1:]
		name, def, hasDef := strings.Cut(ref, ":-")
		if strings.Contains(def, "${") {
			return "", fmt.Errorf("a ${...} inside a default is not supported: ${%s}", ref)
		}
		if !isIdent(name) {
			return "", fmt.Errorf("bad variable reference ${%s} (want ${NAME} or ${NAME:-default})", ref)
		}
		val, ok := lookup(name)
		switch {
		case hasDef && val == "":
			val = def
		case !ok:
			return "", fmt.Errorf("environment variable %s is not set (give a default with ${%s:-value})", name, name)
		}
		b.WriteString(val)
	}
}

// isIdent reports whether s is a name such as an environment variable or a
// path parameter: a letter or underscore, then letters, digits, underscores.
func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// envRefs are the ${...} references protectEnv took out of a file, in order.
type envRefs []string

// The placeholder of reference n is refOpen, n, refClose: characters YAML
// reads as plain text anywhere, from Unicode's private use area.
const refOpen, refClose = "\uE000", "\uE001"

// protectEnv replaces each ${...} of data that stands outside quotes with
// a placeholder YAML reads as plain text even inside {...} and [...], where
// the braces of ${NAME} would end a flow mapping: {token: ${TOKEN:-}} then
// parses as DESIGN.md writes it. A quoted reference is left to YAML, which
// unescapes its default as it would any quoted text. A reference stays on
// its line, so lines do not move; restore puts it back in each scalar
// before expand. A reference left open on its line, and a file that
// already holds the placeholder's characters, are left as they are.
func protectEnv(data []byte) ([]byte, envRefs) {
	if !bytes.Contains(data, []byte("${")) || bytes.Contains(data, []byte(refOpen)) {
		return data, nil
	}
	var out []byte
	var refs envRefs
	for line := range bytes.SplitAfterSeq(data, []byte("\n")) {
		var q quoteState
		for i := 0; i < len(line); i++ {
			// A "$${...}" is protected too, the "$" before it kept: it is
			// text, and its braces must not end a flow mapping either;
			// expand makes it a literal "${...}".
			if line[i] != '$' || i+1 >= len(line) || line[i+1] != '{' || q.quoted() {
				q.next(line, i)
				out = append(out, line[i])
				continue
			}
			end := refEnd(line[i:])
			if end < 0 {
				out = append(out, line[i])
				continue
			}
			out = append(out, refOpen+strconv.Itoa(len(refs))+refClose...)
			refs = append(refs, string(line[i:i+end]))
			i += end - 1
		}
	}
	return out, refs
}

// quoteState follows YAML's quotes along one line: inside "..." a quote
// after an odd run of backslashes is escaped; inside '...' a doubled quote
// toggles twice, so stays inside.
type quoteState struct{ single, double bool }

func (q *quoteState) quoted() bool { return q.single || q.double }

// next steps over line[i].
func (q *quoteState) next(line []byte, i int) {
	switch line[i] {
	case '"':
		if !q.single && !(q.double && backslashesBefore(line, i)%2 == 1) {
			q.double = !q.double
		}
	case '\'':
		if !q.double {
			q.single = !q.single
		}
	}
}

// backslashesBefore counts the backslashes just before line[i].
func backslashesBefore(line []byte, i int) int {
	n := 0
	for j := i - 1; j >= 0 && line[j] == '\\'; j-- {
		n++
	}
	return n
}

// refEnd returns the length of the reference that starts ref, with any
// ${...} nested in it (for expand to refuse), or -1 if it is not closed on
// its line.
func refEnd(ref []byte) int {
	depth := 0
	for i := 0; i < len(ref); i++ {
		switch {
		case ref[i] == '\n':
			return -1
		case ref[i] == '$' && i+1 < len(ref) && ref[i+1] == '{':
			depth++
			i++
		case ref[i] == '}':
			if depth--; depth == 0 {
				return i + 1
			}
		}
	}
	return -1
}

// restore puts the references protectEnv took out of s back in.
func (r envRefs) restore(s string) string {
	if len(r) == 0 || !strings.Contains(s, refOpen) {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, refOpen)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		s = s[i+len(refOpen):]
		j := strings.Index(s, refClose)
		n, err := strconv.Atoi(s[:max(j, 0)])
		if j < 0 || err != nil || n < 0 || n >= len(r) {
			b.WriteString(refOpen) // not one of ours
			continue
		}
		b.WriteString(r[n])
		s = s[j+len(refClose):]
	}
}
