package proxy

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// decoderMembers reads an object's members with encoding/json's Decoder,
// the reference objectMembers must agree with.
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
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			return nil, false
		}
		fields = append(fields, field{key: key, value: v})
	}
	return fields, true
}

func scannedMembers(doc []byte) ([]field, bool) {
	var fields []field
	ok := objectMembers(doc, func(key string, value []byte) {
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

// FuzzObjectMembers: on any valid JSON, objectMembers and the Decoder
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
