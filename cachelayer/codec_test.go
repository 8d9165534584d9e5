package cachelayer

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func sampleEntry() *Entry {
	const stored = int64(1_760_000_000_000_000_000)
	return &Entry{
		Status: 200,
		Header: []HeaderField{
			{Name: []byte("Content-Type"), Value: []byte("application/json")},
			{Name: []byte("Link"), Value: []byte("</a>; rel=preload")},
			{Name: []byte("Link"), Value: []byte("</b>; rel=preload")},
		},
		Body:        []byte(`{"success":true,"data":[]}`),
		Stored:      stored,
		FreshUntil:  stored + 60e9,
		SWRUntil:    stored + 90e9,
		SIEUntil:    stored + 660e9,
		Tags:        []string{"products", "user:42"},
		TagVersions: []uint64{7, 0},
		Path:        "/api/vultr/postgres/products",
		Vary:        []string{"accept-encoding"},
		Variant:     true,
		UpstreamAge: 50,
	}
}

func TestEntryRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		e    *Entry
	}{
		{"full", sampleEntry()},
		{"zero", &Entry{}},
		{"stub", &Entry{Status: 200, Stored: 1, FreshUntil: 2, SWRUntil: 2, SIEUntil: 2, Vary: []string{"accept-language"}}},
		{"negative times", &Entry{Status: 404, Stored: -5, FreshUntil: -1, SWRUntil: 3, SIEUntil: -1}},
		{"huge body", &Entry{Status: 200, Body: bytes.Repeat([]byte("x"), 1<<20)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.e.AppendEncode([]byte("prefix"))
			if !bytes.HasPrefix(b, []byte("prefix")) {
				t.Fatal("AppendEncode overwrote dst")
			}
			got, err := DecodeEntry(b[len("prefix"):])
			if err != nil {
				t.Fatalf("DecodeEntry: %v", err)
			}
			if !reflect.DeepEqual(got, tt.e) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, tt.e)
			}
		})
	}
}

func TestDecodeEntryDoesNotShareInput(t *testing.T) {
	b := sampleEntry().AppendEncode(nil)
	e, err := DecodeEntry(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 0
	}
	if string(e.Body) != `{"success":true,"data":[]}` || string(e.Header[0].Name) != "Content-Type" {
		t.Fatalf("entry changed with its input: %q %q", e.Body, e.Header[0].Name)
	}
}

func TestDecodeEntryRejects(t *testing.T) {
	good := sampleEntry().AppendEncode(nil)
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"one byte", []byte{codecVersion}},
		{"other version", append([]byte{codecVersion + 1}, good[1:]...)},
		{"unknown flag", append([]byte{codecVersion, 0x80}, good[2:]...)},
		{"truncated", good[:len(good)-1]},
		{"trailing byte", append(append([]byte(nil), good...), 0)},
		{"non-shortest number", []byte{codecVersion, 0, 0x80, 0x00}},
		{"count larger than value", []byte{codecVersion, 0, 200, 1, 0, 0, 0, 0xff, 0xff, 0x03}},
		{"status out of range", (&Entry{Status: 1000}).AppendEncode(nil)},
		{"plain text", []byte("hello, world")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := DecodeEntry(tt.b)
			if !errors.Is(err, ErrCorruptEntry) || e != nil {
				t.Fatalf("DecodeEntry(%q) = %v, %v; want nil, ErrCorruptEntry", tt.b, e, err)
			}
		})
	}
}

func TestEntrySizeCountsEveryPart(t *testing.T) {
	base := (&Entry{}).Size()
	if base != entryOverhead {
		t.Fatalf("empty entry costs %d, want the overhead %d", base, entryOverhead)
	}
	tests := []struct {
		name string
		e    *Entry
		min  int64
	}{
		{"body", &Entry{Body: make([]byte, 1000)}, 1000},
		{"header", &Entry{Header: []HeaderField{{Name: make([]byte, 10), Value: make([]byte, 990)}}}, 1000},
		{"tags", &Entry{Tags: []string{string(make([]byte, 1000))}, TagVersions: []uint64{1}}, 1000},
		{"path", &Entry{Path: string(make([]byte, 1000))}, 1000},
		{"vary", &Entry{Vary: []string{string(make([]byte, 1000))}}, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.e.Size() - base; got < tt.min {
				t.Fatalf("Size grew by %d, want at least %d", got, tt.min)
			}
		})
	}
}

func TestEntryTimes(t *testing.T) {
	e := &Entry{FreshUntil: 10, SWRUntil: 15, SIEUntil: 30}
	tests := []struct {
		now   int64
		fresh bool
	}{{9, true}, {10, false}, {20, false}}
	for _, tt := range tests {
		if got := e.Fresh(tt.now); got != tt.fresh {
			t.Errorf("Fresh(%d) = %v, want %v", tt.now, got, tt.fresh)
		}
	}
	if got := e.KeepUntil(); got != 30 {
		t.Errorf("KeepUntil() = %d, want 30", got)
	}
	if got := (&Entry{FreshUntil: 10, SWRUntil: 40, SIEUntil: 30}).KeepUntil(); got != 40 {
		t.Errorf("KeepUntil() with the longer SWR window = %d, want 40", got)
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(sampleEntry().AppendEncode(nil))
	f.Add((&Entry{}).AppendEncode(nil))
	f.Add([]byte{codecVersion, flagVariant, 0xc8, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEntry(b)
		shared, sharedErr := decodeShared(b)
		if (err == nil) != (sharedErr == nil) || !reflect.DeepEqual(e, shared) {
			t.Fatalf("%q: DecodeEntry gave %+v, %v; decodeShared %+v, %v", b, e, err, shared, sharedErr)
		}
		if err != nil {
			return
		}
		if again := e.AppendEncode(nil); !bytes.Equal(again, b) {
			t.Fatalf("decoded %q but re-encoded %q", b, again)
		}
		// DecodeEntry's entry is its own: changing b changes nothing in it.
		orig := bytes.Clone(b)
		for i := range b {
			b[i] ^= 0xff
		}
		if again := e.AppendEncode(nil); !bytes.Equal(again, orig) {
			t.Fatalf("entry changed with the bytes it was decoded from: %q, then %q", orig, again)
		}
	})
}

func BenchmarkEntryCodec(b *testing.B) {
	e := sampleEntry()
	buf := e.AppendEncode(nil)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		buf = e.AppendEncode(buf[:0])
		if _, err := DecodeEntry(buf); err != nil {
			b.Fatal(err)
		}
	}
}
