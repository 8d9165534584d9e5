package jsonscan

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// field is one member of an object: its key and its value as written.
type field struct {
	key   string
	value []byte
}

// decoderMembers reads an object's members with encoding/json's Decoder,
// the reference Members must agree with.
func decoderMembers(doc []byte) ([]field, bool) {
	d := json.NewDecoder(bytes.NewReader(doc))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	var fields []field
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return nil, false
		}
		key, _ := tok.(string)
		var v []byte
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			return nil, false
		}
		v = raw
		fields = append(fields, field{key: key, value: v})
	}
	return fields, true
}

func scannedMembers(doc []byte) ([]field, bool) {
	var fields []field
	ok := Members(doc, func(key string, value []byte) {
		fields = append(fields, field{key: key, value: value})
	})
	return fields, ok
}

var memberSeeds = []string{
	`{}`, ` { } `, `{"a":1}`, "{\n\t\"a\" : 1 ,\r\n\"b\":\"x\"}",
	`{"user_id":"u","items":[{"a":1},{"b":[2,"]}"]}],"total_amount":1.5e3,"status":null}`,
	`{"k\"q":"v\\","\u00e9":"<&>","t":true,"f":false}`, `{"a":1,"a":2}`,
	`{"nested":{"x":{"y":[[],{}]}},"s":"{not an object}"}`, `{"é":"ü"}`, "{\"\xff\":1}",
	`[1,2]`, `"s"`, `12`, `null`,
}

// TestObjectMembers: every member, in order, with its key unquoted and
// its value as written, as the Decoder reads them.
func TestObjectMembers(t *testing.T) {
	for _, doc := range memberSeeds {
		got, ok := scannedMembers([]byte(doc))
		want, wantOK := decoderMembers([]byte(doc))
		if ok != wantOK || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %q, %v; want %q, %v", doc, got, ok, want, wantOK)
		}
	}
}

// FuzzObjectMembers: on any valid JSON, Members and the Decoder
// agree on whether it is an object and on each member.
func FuzzObjectMembers(f *testing.F) {
	for _, doc := range memberSeeds {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		if !json.Valid(doc) {
			return
		}
		got, ok := scannedMembers(doc)
		want, wantOK := decoderMembers(doc)
		if ok != wantOK || !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: got %q, %v; want %q, %v", doc, got, ok, want, wantOK)
		}
	})
}

// decoderElements reads an array's elements with the Decoder.
func decoderElements(doc []byte) ([][]byte, bool) {
	var raws []json.RawMessage
	if err := json.Unmarshal(doc, &raws); err != nil || raws == nil {
		return nil, false
	}
	elems := [][]byte{}
	for _, r := range raws {
		elems = append(elems, []byte(r))
	}
	return elems, true
}

func scannedElements(doc []byte) ([][]byte, bool) {
	elems := [][]byte{}
	ok := Elements(doc, func(v []byte) { elems = append(elems, v) })
	return elems, ok
}

var elementSeeds = []string{
	`[]`, ` [ ] `, `[1]`, "[\n 1 ,\t\"a\" , null,true ]", `[{"a":[1,"]"]},[[]],"x\\\"y"]`,
	`{"a":1}`, `"s"`, `null`, `[[1,2],{"k":"v"},-1.5e3]`,
}

// TestElements: every element, in order, as the Decoder reads it.
func TestElements(t *testing.T) {
	for _, doc := range elementSeeds {
		got, ok := scannedElements([]byte(doc))
		want, wantOK := decoderElements([]byte(doc))
		if !wantOK {
			want = [][]byte{}
		}
		if ok != wantOK || (ok && !reflect.DeepEqual(got, want)) {
			t.Errorf("%s: got %q, %v; want %q, %v", doc, got, ok, want, wantOK)
		}
	}
}

// FuzzElements: on any valid JSON, Elements and the Decoder agree.
func FuzzElements(f *testing.F) {
	for _, doc := range elementSeeds {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		if !json.Valid(doc) {
			return
		}
		got, ok := scannedElements(doc)
		want, wantOK := decoderElements(doc)
		if ok != wantOK || (ok && !reflect.DeepEqual(got, want)) {
			t.Fatalf("%q: got %q, %v; want %q, %v", doc, got, ok, want, wantOK)
		}
	})
}

// TestUnquoteShort: a quote alone is no string.
func TestUnquoteShort(t *testing.T) {
	for _, q := range []string{"", `"`} {
		if s, ok := Unquote([]byte(q)); ok {
			t.Errorf("%q: %q, want not ok", q, s)
		}
	}
}
