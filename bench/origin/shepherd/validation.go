package shepherd

import (
	"math"
	"strconv"
	"time"
	"unicode/utf16"
)

// This file is the slice of zod the Raindrop routes use: object schemas
// of strings, integers, records and arrays, with defaults, reporting
// every issue with zod's messages, and the VALIDATION_ERROR answer the
// app's validateBody and validateQuery middleware build from them.

type fieldKind int

const (
	stringField fieldKind = iota
	numberField           // z.number().int().positive().max(max)
	recordField           // z.record(z.any())
	arrayField            // z.array(of).min(minLen).max(maxLen)
)

// field is one key of an object schema.
type field struct {
	name     string
	kind     fieldKind
	def      func() any // default for undefined; nil: none
	optional bool       // undefined is allowed and stays undefined
	minLen   int        // strings: .min(minLen, minMsg); arrays: .min(minLen)
	minMsg   string
	max      float64 // numbers: .max(max); arrays: .max(max) elements
	of       schema  // arrays: the element schema
}

// schema is z.object({...}): unknown keys are stripped.
type schema []field

// issue is one zod issue, its path joined by dots as the middleware does.
type issue struct{ path, message string }

func (s schema) parse(v any, present bool, path string, issues *[]issue) *object {
	in, isObject := v.(*object)
	if !isObject {
		*issues = append(*issues, issue{path, mismatch("object", v, present)})
		return nil
	}
	out := &object{}
	for _, f := range s {
		val, ok := in.get(f.name)
		fpath := joinPath(path, f.name)
		if !ok {
			switch {
			case f.def != nil:
				out.set(f.name, f.def())
			case !f.optional:
				*issues = append(*issues, issue{fpath, "Required"})
			}
			continue
		}
		if parsed, good := f.check(val, fpath, issues); good {
			out.set(f.name, parsed)
		}
	}
	return out
}

func (f field) check(v any, path string, issues *[]issue) (any, bool) {
	before := len(*issues)
	add := func(msg string) { *issues = append(*issues, issue{path, msg}) }
	switch f.kind {
	case stringField:
		s, isString := v.(string)
		if !isString {
			add(mismatch("string", v, true))
			return nil, false
		}
		if len(utf16.Encode([]rune(s))) < f.minLen {
			msg := f.minMsg
			if msg == "" {
				msg = "String must contain at least " + strconv.Itoa(f.minLen) + " character(s)"
			}
			add(msg)
		}
	case numberField:
		n, isNumber := v.(float64)
		if !isNumber || math.IsNaN(n) {
			add(mismatch("number", v, true))
			return nil, false
		}
		if n != math.Trunc(n) || math.IsInf(n, 0) {
			add("Expected integer, received float")
		}
		if n <= 0 {
			add("Number must be greater than 0")
		}
		if n > f.max {
			add("Number must be less than or equal to " + jsString(f.max))
		}
	case recordField:
		if _, isObject := v.(*object); !isObject {
			add(mismatch("object", v, true))
			return nil, false
		}
	case arrayField:
		items, isArray := v.([]any)
		if !isArray {
			add(mismatch("array", v, true))
			return nil, false
		}
		if len(items) < f.minLen {
			add("Array must contain at least " + strconv.Itoa(f.minLen) + " element(s)")
		}
		if float64(len(items)) > f.max {
			add("Array must contain at most " + jsString(f.max) + " element(s)")
		}
		out := make([]any, len(items))
		for i, item := range items {
			out[i] = f.of.parse(item, true, joinPath(path, strconv.Itoa(i)), issues)
		}
		v = out
	}
	return v, len(*issues) == before
}

// mismatch is zod's invalid_type message.
func mismatch(expected string, v any, present bool) string {
	if !present {
		return "Required"
	}
	return "Expected " + expected + ", received " + typeName(v, present)
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// validationError is the ValidationError the middleware passes to the
// error handler.
func validationError(message string, issues []issue, now time.Time) answer {
	fields := make([]any, len(issues))
	for i, is := range issues {
		fields[i] = newObject("field", is.path, "message", is.message)
	}
	return appErrorDetails(400, "VALIDATION_ERROR", message, newObject("fields", fields), now)
}

// validateBody is validateBody(schema): the parsed body, or the 400.
func validateBody(s schema, rq *request) (*object, *answer) {
	var issues []issue
	out := s.parse(rq.body, true, "", &issues)
	if len(issues) > 0 {
		ans := validationError("Invalid request body", issues, rq.now)
		return nil, &ans
	}
	return out, nil
}

// validateQuery is validateQuery(schema) over req.query, where a
// repeated key is an array.
func validateQuery(s schema, rq *request) (*object, *answer) {
	var issues []issue
	out := s.parse(argsObject(rq.query), true, "", &issues)
	if len(issues) > 0 {
		ans := validationError("Invalid query parameters", issues, rq.now)
		return nil, &ans
	}
	return out, nil
}

func mustGet(o *object, key string) any {
	v, _ := o.get(key)
	return v
}

// defaults shared by the Raindrop schemas.
func str(v string) func() any  { return func() any { return v } }
func num(v float64) func() any { return func() any { return v } }
func emptyRecord() any         { return &object{} }
