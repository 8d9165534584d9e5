package upstream

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestNodeCanonical: the forms the check copies as they are, and the
// forms it leaves to the scanner. What it copies, the scanner would
// print byte for byte (FuzzNodeCanonical).
func TestNodeCanonical(t *testing.T) {
	for _, in := range []string{
		`{"user_id":"user_17","items":[{"product_id":"prod_42","quantity":1,"price":54.99,"size":"M"}],"total_amount":54.99,"status":"pending"}`,
		`[]`, `{}`, `""`, `0`, `-7`, `0.5`, `-0.000001`, `123456789012345`, `12345678901.2345`,
		`true`, `false`, `null`, `{"":1,"a b":"é €𝄞","x":[null,{"y":false}]}`,
	} {
		if !nodeCanonical([]byte(in)) {
			t.Errorf("nodeCanonical(%s) = false, want true", in)
		}
	}
	for _, in := range []string{
		` {}`, `{} `, `{"a": 1}`, `[1, 2]`, // space
		`"a\/b"`, `"a\nb"`, `"\u00e9"`, "\"\xff\"", // escapes, bad UTF-8
		`-0`, `1.0`, `1.50`, `1e3`, `1E3`, `0.0000001`, `1234567890123456`, `0.1234567890123456`, `01`,
		`{"1":2}`, `{"0a":1}`, `{"a":1,"a":2}`, `{"__proto__":1}`, // key order and duplicates
		`{"a":1,}`, `[1,]`, `{"a"}`, `[`, `tru`, ``,
	} {
		if nodeCanonical([]byte(in)) {
			t.Errorf("nodeCanonical(%s) = true, want false", in)
		}
	}
}

// FuzzNodeCanonical: whatever the check copies as it is, the scanner
// prints unchanged.
func FuzzNodeCanonical(f *testing.F) {
	for _, seed := range []string{
		`{"user_id":"u1","items":[{"q":1,"p":54.99}],"t":0.000001}`, `[1,-2.5,"x",{"a":null}]`,
		`123456789012345`, `0.1`, `{"b":1,"a":2}`, `"é"`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if !nodeCanonical(in) {
			return
		}
		out, err := reprintNodeJSON(nil, in)
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("%q is taken as Node's form, but the scanner prints %q (%v)", in, out, err)
		}
	})
}

// TestNodeCanonicalNumbers: random decimals of 1 to 17 digits, the point
// anywhere, at every magnitude the check takes; each it takes, the
// scanner (JavaScript's shortest form) prints as written.
func TestNodeCanonicalNumbers(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 7))
	taken := 0
	for range 200000 {
		digits := make([]byte, 1+rnd.IntN(17))
		for i := range digits {
			digits[i] = byte('0' + rnd.IntN(10))
		}
		var b []byte
		if rnd.IntN(2) == 0 {
			b = append(b, '-')
		}
		if point := rnd.IntN(len(digits) + 1); point == 0 || rnd.IntN(3) == 0 {
			b = append(append(b, "0."...), digits...)
		} else {
			b = append(append(append(b, digits[:point]...), '.'), digits[point:]...)
			b = bytes.TrimSuffix(b, []byte("."))
		}
		if !nodeCanonical(b) {
			continue
		}
		taken++
		if out, err := reprintNodeJSON(nil, b); err != nil || !bytes.Equal(out, b) {
			t.Fatalf("%s is taken as Node's form, but the scanner prints %s (%v)", b, out, err)
		}
	}
	if taken < 10000 {
		t.Fatalf("only %d of 200000 numbers taken: the test proves little", taken)
	}
}
