package cachelayer

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestMessageRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want message
	}{
		{"versions", appendVersionsMessage(nil, 7, 1_760_000_000_123_000_000, []string{"products", "user:42"}, []uint64{3, 1 << 40}),
			message{kind: msgVersions, sender: 7, sent: 1_760_000_000_123_000_000, tags: []string{"products", "user:42"}, versions: []uint64{3, 1 << 40}}},
		{"no versions", appendVersionsMessage(nil, 7, 5, nil, nil),
			message{kind: msgVersions, sender: 7, sent: 5, tags: []string{}, versions: []uint64{}}},
		{"ban", appendBanMessage(nil, 1<<63, ban{prefix: "/api/vultr/", at: 1_760_000_000_123_000_000}),
			message{kind: msgBan, sender: 1 << 63, ban: ban{prefix: "/api/vultr/", at: 1_760_000_000_123_000_000}}},
		{"delete", appendDeleteMessage(nil, 2, []Key{{1}, {2, 3}}),
			message{kind: msgDelete, sender: 2, keys: []Key{{1}, {2, 3}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMessage(tt.b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseMessageRejects(t *testing.T) {
	good := appendVersionsMessage(nil, 7, 9, []string{"products"}, []uint64{3})
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"header only, short", []byte("v1234567")},
		{"unknown kind", append([]byte{'x'}, good[1:]...)},
		{"truncated", good[:len(good)-1]},
		{"trailing", append(append([]byte(nil), good...), 0)},
		{"forged count", append(appendHeader(nil, msgVersions, 1), 2, 0xff, 0xff, 0xff, 0xff, 0x0f)},
		{"partial key", append(appendHeader(nil, msgDelete, 1), 1, 1, 2, 3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseMessage(tt.b); !errors.Is(err, errBadMessage) {
				t.Fatalf("parseMessage(%q) = %v, want errBadMessage", tt.b, err)
			}
		})
	}
}

func FuzzParseMessage(f *testing.F) {
	f.Add(appendVersionsMessage(nil, 7, 9, []string{"products"}, []uint64{3}))
	f.Add(appendBanMessage(nil, 7, ban{prefix: "/api/", at: 5}))
	f.Add(appendDeleteMessage(nil, 7, []Key{{1}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseMessage(b)
		if err != nil {
			return
		}
		var again []byte
		switch m.kind {
		case msgVersions:
			again = appendVersionsMessage(nil, m.sender, m.sent, m.tags, m.versions)
		case msgBan:
			again = appendBanMessage(nil, m.sender, m.ban)
		case msgDelete:
			again = appendDeleteMessage(nil, m.sender, m.keys)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("parsed %q, re-encoded %q", b, again)
		}
	})
}
