package cachelayer

import (
	"fmt"
	"testing"
	"time"
)

func TestTagVersions(t *testing.T) {
	tv := newTagVersions()
	const now = 0 // a version floor of 0, to count by hand
	tv.raise([]string{"a", "b"}, []uint64{3, 1}, now)
	tv.raise([]string{"a"}, []uint64{2}, now) // never lowers
	got := tv.bump([]string{"b", "c"}, now, nil)

	if want := []uint64{2, 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("bump returned %v, want %v", got, want)
	}
	if cur := tv.appendTo([]uint64{99}, []string{"a", "b", "c", "never"}); fmt.Sprint(cur) != "[99 3 2 1 0]" {
		t.Fatalf("appendTo = %v, want [99 3 2 1 0]", cur)
	}

	tests := []struct {
		name  string
		e     *Entry
		valid bool
	}{
		{"no tags", &Entry{}, true},
		{"stamped at the current versions", &Entry{Tags: []string{"a", "b"}, TagVersions: []uint64{3, 2}}, true},
		{"stamped above (another replica saw more)", &Entry{Tags: []string{"a"}, TagVersions: []uint64{5}}, true},
		{"one tag moved on", &Entry{Tags: []string{"a", "b"}, TagVersions: []uint64{3, 1}}, false},
		{"a tag never bumped", &Entry{Tags: []string{"never"}, TagVersions: []uint64{0}}, true},
		{"versions missing", &Entry{Tags: []string{"a"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tv.valid(tt.e); got != tt.valid {
				t.Fatalf("valid = %v, want %v", got, tt.valid)
			}
		})
	}
}

func TestTagVersionsBumpFloorsAtTheTime(t *testing.T) {
	tv := newTagVersions()
	now := time.Now().UnixNano()
	tv.raise([]string{"ahead"}, []uint64{versionFloor(now) + 10}, now)
	got := tv.bump([]string{"new", "ahead"}, now, nil)
	if want := []uint64{versionFloor(now), versionFloor(now) + 11}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("bump = %v, want %v", got, want)
	}
}

func TestTagVersionsForgetOldTags(t *testing.T) {
	tv := newTagVersions()
	long := time.Now().Add(-forgetAfter - time.Minute).UnixNano()
	now := time.Now().UnixNano()
	for i := range minPruneSize - 1 {
		tv.raise([]string{fmt.Sprint("old", i)}, []uint64{1}, long)
	}
	tv.raise([]string{"recent"}, []uint64{1}, now) // reaches minPruneSize: prunes
	if n := len(tv.m); n != 1 {
		t.Fatalf("%d tags kept after pruning, want only the recent one", n)
	}
	if cur := tv.appendTo(nil, []string{"recent", "old0"}); fmt.Sprint(cur) != "[1 0]" {
		t.Fatalf("after pruning: %v, want [1 0]", cur)
	}
	if tv.nextPrune != minPruneSize {
		t.Fatalf("nextPrune = %d, want %d", tv.nextPrune, minPruneSize)
	}
}

func TestBans(t *testing.T) {
	var b bans
	now := time.Now().UnixNano()
	entry := func(path string, stored int64) *Entry { return &Entry{Path: path, Stored: stored} }
	if !b.allows(entry("/api/x", 0)) {
		t.Fatal("an empty ban list voided an entry")
	}
	b.add(now, ban{prefix: "/api/vultr/", at: now}, ban{prefix: "/old/", at: now - int64(forgetAfter) - 1})
	b.add(now, ban{prefix: "/api/vultr/", at: now - 10}) // an older copy does not move the ban back
	if n := b.count(); n != 1 {
		t.Fatalf("%d bans in force, want 1 (the old one forgotten)", n)
	}
	tests := []struct {
		name  string
		e     *Entry
		allow bool
	}{
		{"matching, stored before", entry("/api/vultr/products", now-1), false},
		{"matching, stored at the ban", entry("/api/vultr/products", now), true},
		{"matching, stored after", entry("/api/vultr/products", now+1), true},
		{"other path, stored before", entry("/api/raindrop/x", now-1), true},
		{"forgotten ban", entry("/old/x", now-int64(forgetAfter)-2), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := b.allows(tt.e); got != tt.allow {
				t.Fatalf("allows = %v, want %v", got, tt.allow)
			}
		})
	}
}

func TestBanTimeRoundsUp(t *testing.T) {
	tests := []struct{ in, want int64 }{
		{0, 0},
		{1, 1e6},
		{1e6, 1e6},
		{1e6 + 1, 2e6},
	}
	for _, tt := range tests {
		if got := banTime(tt.in); got != tt.want {
			t.Errorf("banTime(%d) = %d, want %d", tt.in, got, tt.want)
		}
	}
}
