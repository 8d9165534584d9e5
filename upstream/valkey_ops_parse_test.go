package upstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// decoderValkeyOps is ParseValkeyOps as first written, on encoding/json:
// the reference the scanner must agree with.
func decoderValkeyOps(body []byte) (*ValkeyOps, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, ErrOperationsNotArray // not an object: no operations
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(top["operations"], &raws); err != nil || raws == nil {
		return nil, ErrOperationsNotArray
	}
	o := &ValkeyOps{ops: make([]valkeyOp, 0, len(raws))}
	for _, raw := range raws {
		raw = bytes.TrimSpace(raw)
		if string(raw) == "null" {
			o.Threw = true
			break
		}
		if raw[0] != '{' {
			continue // a number, string or array has no type
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(raw, &fields); err != nil {
			return nil, err // cannot happen in a body already checked
		}
		var op valkeyOp
		if t, ok := fields["type"]; !ok || json.Unmarshal(t, &op.typ) != nil {
			continue // not a string: no type matches
		}
		switch op.typ {
		case opSet, opGet, opDelete:
		default:
			continue
		}
		if k, ok := fields["key"]; ok {
			kj, err := appendNodeJSON(nil, k)
			if err != nil {
				return nil, err
			}
			op.keyJSON = kj
			if string(bytes.TrimSpace(k)) != "null" {
				op.key = JSString(k)
			}
		}
		if op.typ == opSet {
			text, err := appText(fields["value"])
			if err != nil {
				return nil, err
			}
			op.text = text
			op.ttl, op.refused = SetexTTL(fields["ttl"])
		}
		o.ops = append(o.ops, op)
	}
	return o, nil
}

var valkeyOpsSeeds = []string{
	`{"operations":[]}`, `{"operations":[{"type":"set","key":"k","value":{"a":1},"ttl":60}]}`,
	`{"operations":[{"type":"get","key":"k"},{"type":"delete","key":"k"},{"type":"other","key":"x"}]}`,
	`{"operations":[1,"s",[2],{"key":"no type"},{"type":3},{"type":"get"},null,{"type":"get","key":"after"}]}`,
	`{"operations":[{"type":"set","type":"get","key":"a","key":["b",null,1.50]}]}`,
	`{"operations":1,"operations":[{"type":"set","key":"k","value":"s\u00e9\ud83d","ttl":"30"}]}`,
	` { "operations" : [ { "type" : "set" , "key" : 1e21 , "value" : [1.0,{"2":0,"1":0}] , "ttl" : 0 } ] } `,
	`{"operations":[{"ty\u0070e":"set","key":{"a":1},"value":null,"ttl":[1]}]}`,
	`{"operations":null}`, `{"operations":{}}`, `{}`, `[]`, `"x"`, `{"operations":"[]"}`,
}

// sameOps reports whether two parses agree, an empty list as no list.
func sameOps(a, b *ValkeyOps) bool {
	if (a == nil) != (b == nil) {
		return false
	}
	if a == nil {
		return true
	}
	return a.Threw == b.Threw && len(a.ops) == len(b.ops) && (len(a.ops) == 0 || reflect.DeepEqual(a.ops, b.ops))
}

// TestParseValkeyOpsAgrees: the scanner reads every body as the
// encoding/json reference does, errors included.
func TestParseValkeyOpsAgrees(t *testing.T) {
	for _, body := range valkeyOpsSeeds {
		got, err := ParseValkeyOps([]byte(body))
		want, wantErr := decoderValkeyOps([]byte(body))
		if !sameOps(got, want) || !errors.Is(err, wantErr) && (err == nil || wantErr == nil) {
			t.Errorf("%s:\n got %+v, %v\nwant %+v, %v", body, got, err, want, wantErr)
		}
	}
}

// FuzzParseValkeyOps: on any valid JSON, the scanner and the reference
// agree.
func FuzzParseValkeyOps(f *testing.F) {
	for _, body := range valkeyOpsSeeds {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !json.Valid(body) {
			return
		}
		got, err := ParseValkeyOps(body)
		want, wantErr := decoderValkeyOps(body)
		if !sameOps(got, want) || (err == nil) != (wantErr == nil) {
			t.Fatalf("%q:\n got %+v, %v\nwant %+v, %v", body, got, err, want, wantErr)
		}
	})
}

// BenchmarkParseValkeyOps reads a body of 16 sets, the depth of
// redis-benchmark -P 16.
func BenchmarkParseValkeyOps(b *testing.B) {
	var ops []string
	for i := range 16 {
		ops = append(ops, fmt.Sprintf(`{"type":"set","key":"bench:k%d","value":{"v":%d,"s":"hello"},"ttl":300}`, i, i))
	}
	body := []byte(`{"operations":[` + strings.Join(ops, ",") + `]}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := ParseValkeyOps(body); err != nil {
			b.Fatal(err)
		}
	}
}
