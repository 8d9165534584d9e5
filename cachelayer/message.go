package cachelayer

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The kinds of message replicas exchange on the invalidation channel.
const (
	msgVersions = 'v' // tags and their new versions
	msgBan      = 'b' // one ban
	msgDelete   = 'd' // keys to drop from L1
)

// message is one pub/sub payload: a kind byte, the sender's id (so a
// replica skips its own), then the kind's fields.
type message struct {
	kind     byte
	sender   uint64
	sent     int64    // msgVersions: when it was published, Unix ns, for the lag
	tags     []string // msgVersions
	versions []uint64 // msgVersions, one per tag
	ban      ban      // msgBan
	keys     []Key    // msgDelete
}

var errBadMessage = errors.New("bad invalidation message")

func appendHeader(dst []byte, kind byte, sender uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, kind), sender)
}

func appendVersionsMessage(dst []byte, sender uint64, sent int64, tags []string, versions []uint64) []byte {
	dst = appendHeader(dst, msgVersions, sender)
	dst = binary.AppendVarint(dst, sent)
	dst = binary.AppendUvarint(dst, uint64(len(tags)))
	for i, tag := range tags {
		dst = appendString(dst, tag)
		dst = binary.AppendUvarint(dst, versions[i])
	}
	return dst
}

func appendBanMessage(dst []byte, sender uint64, b ban) []byte {
	dst = appendHeader(dst, msgBan, sender)
	dst = binary.AppendVarint(dst, b.at)
	return appendString(dst, b.prefix)
}

func appendDeleteMessage(dst []byte, sender uint64, keys []Key) []byte {
	dst = appendHeader(dst, msgDelete, sender)
	dst = binary.AppendUvarint(dst, uint64(len(keys)))
	for _, k := range keys {
		dst = append(dst, k[:]...)
	}
	return dst
}

// parseMessage reads a payload; anything malformed is an error, never a
// panic, since anyone who can publish on the channel can send it.
func parseMessage(b []byte) (message, error) {
	if len(b) < 9 {
		return message{}, fmt.Errorf("%w: %d bytes", errBadMessage, len(b))
	}
	m := message{kind: b[0], sender: binary.BigEndian.Uint64(b[1:9])}
	r := reader{b: b[9:]}
	switch m.kind {
	case msgVersions:
		m.sent = r.varint()
		n := r.count(2)
		m.tags = make([]string, n)
		m.versions = make([]uint64, n)
		for i := range n {
			m.tags[i] = string(r.bytes())
			m.versions[i] = r.uvarint()
		}
	case msgBan:
		m.ban.at = r.varint()
		m.ban.prefix = string(r.bytes())
	case msgDelete:
		n := r.count(len(Key{}))
		m.keys = make([]Key, n)
		for i := range m.keys {
			copy(m.keys[i][:], r.b)
			r.b = r.b[len(Key{}):]
		}
	default:
		return message{}, fmt.Errorf("%w: kind %q", errBadMessage, m.kind)
	}
	if r.err == nil && len(r.b) > 0 {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return message{}, fmt.Errorf("%w: %v", errBadMessage, r.err)
	}
	return m, nil
}
