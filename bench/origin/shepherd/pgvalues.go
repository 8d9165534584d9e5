package shepherd

import (
	"cmp"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"unicode/utf8"
)

// This file is how a JavaScript value becomes a PostgreSQL column value
// on the app's writes: node-postgres's conversions, and PostgreSQL's
// refusals (NOT NULL, types, lengths, bytes it cannot store), which the
// routes turn into their 500s.

// pgError is a statement PostgreSQL refuses; the route answers 500.
type pgError struct{ msg string }

func (e *pgError) Error() string { return e.msg }

// pgText is a value node-postgres sends for a text column: String(v) for
// scalars, JSON for objects, an array literal for arrays; NULL when
// missing or null.
func pgText(v any, present bool, column string, maxChars int) (*string, error) {
	if !present || v == nil {
		return nil, nil
	}
	var s string
	switch x := v.(type) {
	case *object:
		s = toJSONText(x)
	case []any:
		s = pgArrayLiteral(x)
	default:
		s = jsString(x)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return nil, &pgError{`invalid byte sequence for encoding "UTF8": 0x00`}
	}
	s = strings.ToValidUTF8(s, "\uFFFD") // lone surrogates, as Buffer.from writes them
	if maxChars > 0 && utf8.RuneCountInString(s) > maxChars {
		return nil, &pgError{fmt.Sprintf("value too long for type character varying(%d) in column %q", maxChars, column)}
	}
	return &s, nil
}

func pgArrayLiteral(a []any) string {
	parts := make([]string, len(a))
	for i, e := range a {
		switch x := e.(type) {
		case nil:
			parts[i] = "NULL"
		case []any:
			parts[i] = pgArrayLiteral(x)
		default:
			s := jsString(x)
			if o, ok := x.(*object); ok {
				s = toJSONText(o)
			}
			parts[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// notNull is PostgreSQL's NOT NULL violation.
func notNull(column string) error {
	return &pgError{`null value in column "` + column + `" violates not-null constraint`}
}

// pgDecimal2 converts v for a DECIMAL(10,2) column: rounded half away
// from zero to cents, at most 8 integer digits.
func pgDecimal2(v any, present bool, column string) (string, error) {
	if !present || v == nil {
		return "", notNull(column)
	}
	var text string
	switch x := v.(type) {
	case float64:
		text = jsString(x)
	case string:
		text = strings.TrimSpace(x)
	default:
		return "", &pgError{`invalid input syntax for type numeric: "` + jsString(v) + `"`}
	}
	if strings.EqualFold(text, "nan") {
		return "NaN", nil
	}
	r, ok := new(big.Rat).SetString(text)
	if !ok || !isDecimalText(text) {
		return "", &pgError{`invalid input syntax for type numeric: "` + text + `"`}
	}
	r.Mul(r, big.NewRat(100, 1))
	num, den := r.Num(), r.Denom()
	q, m := new(big.Int).QuoRem(num, den, new(big.Int))
	if new(big.Int).Mul(new(big.Int).Abs(m), big.NewInt(2)).Cmp(den) >= 0 {
		if num.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	if !q.IsInt64() || q.Int64() >= 1e10 || q.Int64() <= -1e10 {
		return "", &pgError{"numeric field overflow"}
	}
	return cents(q.Int64()), nil
}

// isDecimalText reports whether s is a plain decimal, [+-]digits[.digits][e±digits],
// the part of NUMERIC's input syntax a finite value uses.
func isDecimalText(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i, digits = i+1, digits+1
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i, digits = i+1, digits+1
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i, exp = i+1, exp+1
		}
		if exp == 0 {
			return false
		}
	}
	return i == len(s)
}

// pgJSONB is JSON.stringify(v) stored in a JSONB column and read back:
// NULL when v is missing, and PostgreSQL's refusals of \u0000 and lone
// surrogates. The value comes back with JSONB's key order.
func pgJSONB(v any, present bool) (any, bool, error) {
	if !present {
		return nil, false, nil
	}
	if err := jsonbCheck(v); err != nil {
		return nil, false, err
	}
	return jsonbValue(v), true, nil
}

func jsonbCheck(v any) error {
	check := func(s string) error {
		if strings.IndexByte(s, 0) >= 0 {
			return &pgError{"unsupported Unicode escape sequence"}
		}
		if !utf8.ValidString(s) {
			return &pgError{"invalid Unicode surrogate pair"}
		}
		return nil
	}
	switch x := v.(type) {
	case string:
		return check(x)
	case []any:
		for _, e := range x {
			if err := jsonbCheck(e); err != nil {
				return err
			}
		}
	case *object:
		for _, m := range x.members {
			if err := check(m.key); err != nil {
				return err
			}
			if err := jsonbCheck(m.val); err != nil {
				return err
			}
		}
	}
	return nil
}

// jsonbValue returns v with every object's keys in JSONB's storage order:
// shorter keys first, then bytewise.
func jsonbValue(v any) any {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonbValue(e)
		}
		return out
	case *object:
		ms := make([]member, len(x.members))
		for i, m := range x.members {
			ms[i] = member{m.key, jsonbValue(m.val)}
		}
		slices.SortStableFunc(ms, func(a, b member) int {
			return cmp.Or(cmp.Compare(len(a.key), len(b.key)), strings.Compare(a.key, b.key))
		})
		out := &object{}
		for _, m := range ms {
			out.set(m.key, m.val)
		}
		return out
	}
	return v
}
