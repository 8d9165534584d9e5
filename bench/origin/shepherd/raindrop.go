package shepherd

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// memoryStore is Raindrop SmartMemory as the app's mock answers it: one
// list of entries per user, in the order they were stored.
type memoryStore struct {
	mu     sync.Mutex // protects byUser and ids
	byUser map[string][]*memoryEntry
	ids    map[string]bool // every id in use, so new ids never collide
}

type memoryEntry struct {
	id, userID, typ, text string
	metadata              any
	created, updated      time.Time // updated is zero until update-memory
}

func newMemoryStore() *memoryStore {
	return &memoryStore{byUser: make(map[string][]*memoryEntry), ids: make(map[string]bool)}
}

func (e *memoryEntry) object() *object {
	o := newObject(
		"id", e.id,
		"userId", e.userID,
		"type", e.typ,
		"text", e.text,
		"metadata", e.metadata,
		"createdAt", isoTime(e.created),
	)
	if !e.updated.IsZero() {
		o.set("updatedAt", isoTime(e.updated))
	}
	return o
}

// newID is the mock's `${Date.now()}-${Math.floor(Math.random() * 1000)}`,
// drawn again when taken (the app's mock can collide; this one does not).
// The caller holds mu.
func (m *memoryStore) newID(now time.Time) string {
	prefix := strconv.FormatInt(now.UnixMilli(), 10) + "-"
	for range 8 {
		if id := prefix + strconv.Itoa(rand.IntN(1000)); !m.ids[id] {
			return id
		}
	}
	for n := 0; ; n++ {
		if id := prefix + strconv.Itoa(n); !m.ids[id] {
			return id
		}
	}
}

func (m *memoryStore) store(userID, typ, text string, metadata any, now time.Time) *memoryEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := &memoryEntry{id: m.newID(now), userID: userID, typ: typ, text: text, metadata: metadata, created: now}
	m.ids[e.id] = true
	m.byUser[userID] = append(m.byUser[userID], e)
	return e
}

// search is the mock's search: the user's entries whose text contains q
// (case-insensitively), the last topK of them, newest first.
func (m *memoryStore) search(userID, q string, topK int) []*memoryEntry {
	q = strings.ToLower(q)
	m.mu.Lock()
	defer m.mu.Unlock()
	var hits []*memoryEntry
	for _, e := range m.byUser[userID] {
		if strings.Contains(strings.ToLower(e.text), q) {
			hits = append(hits, e)
		}
	}
	if len(hits) > topK {
		hits = hits[len(hits)-topK:]
	}
	out := make([]*memoryEntry, len(hits))
	for i, e := range hits {
		out[len(hits)-1-i] = e
	}
	return out
}

// remove deletes the user's entry id and reports how many went.
func (m *memoryStore) remove(userID, id string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	list := m.byUser[userID]
	kept := list[:0]
	for _, e := range list {
		if e.id != id {
			kept = append(kept, e)
		}
	}
	n := len(list) - len(kept)
	clear(list[len(kept):])
	if len(kept) == 0 {
		delete(m.byUser, userID)
	} else {
		m.byUser[userID] = kept
	}
	if n > 0 {
		delete(m.ids, id)
	}
	return n
}

// update changes an entry's text, and its type and metadata when given;
// it returns the entry as updated, or nil.
func (m *memoryStore) update(userID, id, text string, typ, metadata any, now time.Time) *object {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.byUser[userID] {
		if e.id != id {
			continue
		}
		e.text = text
		if t, ok := typ.(string); ok {
			e.typ = t
		}
		if metadata != nil {
			e.metadata = metadata
		}
		e.updated = now
		return e.object()
	}
	return nil
}

// stats is getMemoryStats: the count, the count per type, and the oldest
// and newest createdAt.
func (m *memoryStore) stats(userID string) *object {
	m.mu.Lock()
	defer m.mu.Unlock()
	byType := &object{}
	var oldest, newest any
	var first, last time.Time
	list := m.byUser[userID]
	for _, e := range list {
		n, _ := byType.get(e.typ)
		c, _ := n.(float64)
		byType.set(e.typ, c+1)
		if first.IsZero() || e.created.Before(first) {
			first, oldest = e.created, isoTime(e.created)
		}
		if last.IsZero() || !e.created.Before(last) {
			last, newest = e.created, isoTime(e.created)
		}
	}
	return newObject("total", float64(len(list)), "byType", byType, "oldest", oldest, "newest", newest)
}

func entries(list []*memoryEntry) []any {
	out := make([]any, len(list))
	for i, e := range list {
		out[i] = e.object()
	}
	return out
}

// The Raindrop schemas, with the server's defaults.
var (
	userIDField   = field{name: "userId", kind: stringField, def: str("demo_user")}
	memoryIDField = field{name: "id", kind: stringField, minLen: 1, minMsg: "Memory ID is required"}
	memorySchema  = schema{
		userIDField,
		{name: "type", kind: stringField, def: str("working")},
		{name: "text", kind: stringField, minLen: 1, minMsg: "Text is required"},
		{name: "metadata", kind: recordField, def: emptyRecord},
	}
	batchSchema = schema{{name: "memories", kind: arrayField, minLen: 1, max: 100, of: schema{
		userIDField,
		{name: "type", kind: stringField, def: str("working")},
		{name: "text", kind: stringField, minLen: 1},
		{name: "metadata", kind: recordField, def: emptyRecord},
	}}}
	searchSchema = schema{
		userIDField,
		{name: "q", kind: stringField, def: str("")},
		{name: "topK", kind: numberField, max: 10000, def: num(20)},
	}
	deleteSchema = schema{userIDField, memoryIDField}
	updateSchema = schema{
		userIDField,
		memoryIDField,
		{name: "text", kind: stringField, minLen: 1, minMsg: "Text is required"},
		{name: "type", kind: stringField, optional: true},
		{name: "metadata", kind: recordField, optional: true},
	}
	userSchema = schema{userIDField}
)

// exportLimit is the topK the app asks for when it wants everything.
const exportLimit = 10000

func strProp(o *object, key string) string {
	v, _ := o.get(key)
	s, _ := v.(string)
	return s
}

// storeMemory answers POST /api/raindrop/store-memory.
func (a *App) storeMemory(rq *request) answer {
	in, bad := validateBody(memorySchema, rq)
	if bad != nil {
		return *bad
	}
	md, _ := in.get("metadata")
	e := a.memories.store(strProp(in, "userId"), strProp(in, "type"), strProp(in, "text"), md, rq.now)
	return ok(newObject("success", true, "source", "mock", "entry", e.object(), "results", []any{e.object()}))
}

// batchStoreMemory answers POST /api/raindrop/batch-store-memory.
func (a *App) batchStoreMemory(rq *request) answer {
	in, bad := validateBody(batchSchema, rq)
	if bad != nil {
		return *bad
	}
	ms, _ := in.get("memories")
	results := []any{}
	for _, item := range ms.([]any) {
		o := item.(*object)
		md, _ := o.get("metadata")
		e := a.memories.store(strProp(o, "userId"), strProp(o, "type"), strProp(o, "text"), md, rq.now)
		results = append(results, newObject("success", true, "source", "mock", "id", e.id))
	}
	return ok(newObject("success", true, "results", results))
}

// searchMemory answers POST /api/raindrop/search-memory.
func (a *App) searchMemory(rq *request) answer {
	in, bad := validateBody(searchSchema, rq)
	if bad != nil {
		return *bad
	}
	topK, _ := in.get("topK")
	hits := a.memories.search(strProp(in, "userId"), strProp(in, "q"), int(topK.(float64)))
	return ok(newObject("success", true, "source", "mock", "results", entries(hits)))
}

// deleteMemory answers POST /api/raindrop/delete-memory.
func (a *App) deleteMemory(rq *request) answer {
	in, bad := validateBody(deleteSchema, rq)
	if bad != nil {
		return *bad
	}
	n := a.memories.remove(strProp(in, "userId"), strProp(in, "id"))
	return ok(newObject("success", true, "source", "mock", "deleted", float64(n)))
}

// updateMemory answers POST /api/raindrop/update-memory.
func (a *App) updateMemory(rq *request) answer {
	in, bad := validateBody(updateSchema, rq)
	if bad != nil {
		return *bad
	}
	typ, _ := in.get("type")
	md, _ := in.get("metadata")
	e := a.memories.update(strProp(in, "userId"), strProp(in, "id"), strProp(in, "text"), typ, md, rq.now)
	if e == nil {
		return answer{404, newObject("success", false, "message", "Memory not found")}
	}
	return ok(newObject("success", true, "source", "mock", "entry", e))
}

// clearMemory answers POST /api/raindrop/clear-memory: it deletes what a
// full search finds, one entry at a time, as the app does.
func (a *App) clearMemory(rq *request) answer {
	in, bad := validateBody(userSchema, rq)
	if bad != nil {
		return *bad
	}
	user := strProp(in, "userId")
	items := a.memories.search(user, "", exportLimit)
	deleted := 0
	for _, e := range items {
		if a.memories.remove(user, e.id) > 0 {
			deleted++
		}
	}
	return ok(newObject("success", true, "deleted", float64(deleted), "total", float64(len(items))))
}

// queryUser is `(req.query.userId as string) || 'demo_user'` after
// validateQuery.
func queryUser(in *object) string {
	if u := strProp(in, "userId"); u != "" {
		return u
	}
	return "demo_user"
}

// exportMemory answers GET /api/raindrop/export-memory as a download.
func (a *App) exportMemory(rq *request) answer {
	in, bad := validateQuery(userSchema, rq)
	if bad != nil {
		return *bad
	}
	user := queryUser(in)
	stamp := strings.ReplaceAll(isoTime(rq.now)[:19], ":", "-")
	disposition, valid := latin1(`attachment; filename="style-shepherd-memories-` + user + "-" + stamp + `.json"`)
	if !valid {
		msg := `Invalid character in header content ["Content-Disposition"]`
		return appErrorDetails(500, "INTERNAL_SERVER_ERROR", msg, newObject("originalError", msg), rq.now)
	}
	rq.ctx.Response.Header.SetCanonical([]byte("Content-Disposition"), disposition)
	items := entries(a.memories.search(user, "", exportLimit))
	return ok(newObject(
		"exportedAt", isoTime(rq.now),
		"userId", user,
		"count", float64(len(items)),
		"memories", items,
	))
}

// latin1 encodes a header value as Node writes it, one byte per
// character; it reports false for characters Node refuses in a header.
func latin1(s string) ([]byte, bool) {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r == utf8.RuneError || (r != '\t' && (r < 0x20 || r == 0x7f || r > 0xff)) {
			return nil, false
		}
		out = append(out, byte(r))
	}
	return out, true
}

// memoryStats answers GET /api/raindrop/memory-stats.
func (a *App) memoryStats(rq *request) answer {
	in, bad := validateQuery(userSchema, rq)
	if bad != nil {
		return *bad
	}
	return ok(newObject("success", true, "stats", a.memories.stats(queryUser(in))))
}
