package configs

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ByteSize is a size in bytes, written in YAML as a number of bytes or
// with a unit: 512KiB, 10MiB, 1GiB (powers of 1024) or 10KB, 10MB, 1GB
// (powers of 1000).
type ByteSize int64

// byteUnits are the accepted suffixes, largest first so String picks the
// shortest exact spelling. Binary units come before decimal ones of the
// same rank because limits in this project are mostly powers of two.
var byteUnits = []struct {
	suffix string
	size   int64
}{
	{"GiB", 1 << 30}, {"GB", 1e9},
	{"MiB", 1 << 20}, {"MB", 1e6},
	{"KiB", 1 << 10}, {"KB", 1e3},
	{"B", 1},
}

// ParseByteSize reads a byte size: a non-negative integer, optionally
// followed by B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of
// 1024). Units are case-sensitive, so "kb" is not taken for kilobits.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	digits := len(t) - len(strings.TrimLeft(t, "0123456789"))
	if digits == 0 {
		return 0, fmt.Errorf("bad byte size %q (want bytes or a unit: B, KB, MB, GB, KiB, MiB, GiB)", s)
	}
	n, err := strconv.ParseInt(t[:digits], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad byte size %q: too large", s)
	}
	unit := strings.TrimSpace(t[digits:])
	if unit == "" {
		return ByteSize(n), nil
	}
	for _, u := range byteUnits {
		if u.suffix != unit {
			continue
		}
		if n > math.MaxInt64/u.size {
			return 0, fmt.Errorf("bad byte size %q: too large", s)
		}
		return ByteSize(n * u.size), nil
	}
	return 0, fmt.Errorf("bad byte size %q (want bytes or a unit: B, KB, MB, GB, KiB, MiB, GiB)", s)
}

// String spells the size with the largest unit that divides it exactly,
// so ParseByteSize(b.String()) == b.
func (b ByteSize) String() string {
	if b <= 0 {
		return strconv.FormatInt(int64(b), 10) + "B"
	}
	for _, u := range byteUnits {
		if int64(b)%u.size == 0 {
			return strconv.FormatInt(int64(b)/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}
