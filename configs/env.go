package configs

import (
	"fmt"
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
