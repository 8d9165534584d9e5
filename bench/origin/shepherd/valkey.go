package shepherd

import (
	"strconv"
	"sync"
	"time"
)

// valkey is the app's Valkey: string keys, string values, optional
// expiry. Expired keys vanish on read and in a sweep every sweepEvery
// writes, so no goroutine is needed.
type valkey struct {
	mu      sync.Mutex // protects entries and writes
	entries map[string]kvEntry
	writes  int
}

type kvEntry struct {
	val     string
	expires int64 // unix milliseconds; 0: never
}

const sweepEvery = 4096

func newValkey() *valkey { return &valkey{entries: make(map[string]kvEntry)} }

func (e kvEntry) live(nowMs int64) bool { return e.expires == 0 || e.expires > nowMs }

// set is SET (ttl 0) or SETEX.
func (kv *valkey) set(key, val string, ttlSeconds int64, now time.Time) {
	e := kvEntry{val: val}
	if ttlSeconds > 0 {
		e.expires = now.UnixMilli() + ttlSeconds*1000
	}
	kv.mu.Lock()
	defer kv.mu.Unlock()
	kv.entries[key] = e
	kv.writes++
	if kv.writes >= sweepEvery {
		kv.writes = 0
		nowMs := now.UnixMilli()
		for k, e := range kv.entries {
			if !e.live(nowMs) {
				delete(kv.entries, k)
			}
		}
	}
}

// get is GET.
func (kv *valkey) get(key string, now time.Time) (string, bool) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	e, ok := kv.entries[key]
	if ok && !e.live(now.UnixMilli()) {
		delete(kv.entries, key)
		return "", false
	}
	return e.val, ok
}

// del is DEL of one key; it reports whether the key existed.
func (kv *valkey) del(key string, now time.Time) bool {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	e, ok := kv.entries[key]
	delete(kv.entries, key)
	return ok && e.live(now.UnixMilli())
}

// expire is EXPIRE: a new TTL for an existing key.
func (kv *valkey) expire(key string, seconds int64, now time.Time) bool {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	e, ok := kv.entries[key]
	if !ok || !e.live(now.UnixMilli()) {
		return false
	}
	e.expires = now.UnixMilli() + seconds*1000
	kv.entries[key] = e
	return true
}

// size is DBSIZE, counting keys not yet swept.
func (kv *valkey) size() int {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	return len(kv.entries)
}

// cacheSetFailed is the message of the CacheError vultrValkey.set throws.
const cacheSetFailed = "Failed to set cache value"

// maxTTLSeconds keeps an expiry in milliseconds inside int64, as
// Valkey's own check does.
const maxTTLSeconds = (1<<63 - 1) / 1000 / 2

// storeValue is vultrValkey.set(key, value, ttl): a string is stored as
// its text, anything else as JSON; a truthy ttl means SETEX, which wants
// a positive integer. It reports whether Valkey took the write.
func (a *App) storeValue(key string, value any, present bool, ttl any, ttlPresent bool, now time.Time) bool {
	text := ""
	if s, isString := value.(string); isString {
		text = s
	} else if present {
		text = toJSONText(value)
	}
	var seconds int64
	if truthy(ttl, ttlPresent) {
		if _, isArray := ttl.([]any); isArray {
			return false // ioredis flattens it into extra arguments
		}
		n, ok := redisInteger(jsString(ttl))
		if !ok || n <= 0 || n > maxTTLSeconds {
			return false
		}
		seconds = n
	}
	a.kv.set(key, text, seconds, now)
	return true
}

// loadValue is vultrValkey.get(key): null (false) for a missing or empty
// value, else JSON.parse of the text, or the text when it is not JSON.
func (a *App) loadValue(key string, now time.Time) (any, bool) {
	text, ok := a.kv.get(key, now)
	if !ok || text == "" {
		return nil, false
	}
	if v, err := parseJSON([]byte(text)); err == nil {
		return v, true
	}
	return text, true
}

// redisInteger parses s as Valkey parses an integer argument: optional
// minus, no leading zeros, no spaces, within int64.
func redisInteger(s string) (int64, bool) {
	if s == "" || s == "-" || (len(s) > 1 && s[0] == '0') || (len(s) > 2 && s[0] == '-' && s[1] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && !(i == 0 && s[i] == '-') {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// redisKey is a key argument as ioredis sends it.
func redisKey(v any, present bool) string {
	if !present || v == nil {
		return ""
	}
	return jsString(v)
}

// ttlOr is the `{ ttl = def } = req.body` destructuring default: it
// applies only when ttl is undefined.
func ttlOr(body any, def float64) (any, bool) {
	if v, ok := prop(body, "ttl"); ok {
		return v, true
	}
	return def, true
}

// setSession answers POST /valkey/session/:sessionId: the whole body is
// the session, kept for ttl (or 86400) seconds.
func (a *App) setSession(rq *request) answer {
	ttl, present := prop(rq.body, "ttl")
	if !truthy(ttl, present) {
		ttl, present = 86400.0, true
	}
	if !a.storeValue("session:"+rq.param(0), rq.body, true, ttl, present, rq.now) {
		return vultrError(500, "Failed to set session")
	}
	return ok(newObject("success", true))
}

// getSession answers GET /valkey/session/:sessionId.
func (a *App) getSession(rq *request) answer {
	v, found := a.loadValue("session:"+rq.param(0), rq.now)
	if !truthy(v, found) {
		return vultrError(404, "Session not found")
	}
	return ok(v)
}

// touchSession answers POST /valkey/session/:sessionId/touch: a new
// 24-hour TTL, success even when there is no such session.
func (a *App) touchSession(rq *request) answer {
	a.kv.expire("session:"+rq.param(0), 86400, rq.now)
	return ok(newObject("success", true))
}

// deleteSession answers DELETE /valkey/session/:sessionId; success says
// whether a session was deleted.
func (a *App) deleteSession(rq *request) answer {
	return ok(newObject("success", a.kv.del("session:"+rq.param(0), rq.now)))
}

// typedCache is one of the per-user typed caches: the body field it
// stores (as {field: value}), its key prefix, default TTL and messages.
type typedCache struct {
	field, prefix    string
	defaultTTL       float64
	failed, notFound string
}

var (
	conversationCache    = typedCache{"context", "conversation:", 3600, "Failed to cache conversation", "Conversation not found"}
	recommendationsCache = typedCache{"recommendations", "recommendations:", 1800, "Failed to cache recommendations", "Recommendations not found"}
	preferencesCache     = typedCache{"preferences", "preferences:", 3600, "Failed to cache preferences", "Preferences not found"}
)

func (a *App) setTyped(c typedCache, rq *request) answer {
	stored := &object{}
	if v, ok := prop(rq.body, c.field); ok {
		stored.set(c.field, v)
	}
	ttl, present := ttlOr(rq.body, c.defaultTTL)
	if !a.storeValue(c.prefix+rq.param(0), stored, true, ttl, present, rq.now) {
		return vultrError(500, c.failed)
	}
	return ok(newObject("success", true))
}

func (a *App) getTyped(c typedCache, rq *request) answer {
	v, found := a.loadValue(c.prefix+rq.param(0), rq.now)
	if !truthy(v, found) {
		return vultrError(404, c.notFound)
	}
	return ok(v)
}

func (a *App) setConversation(rq *request) answer    { return a.setTyped(conversationCache, rq) }
func (a *App) getConversation(rq *request) answer    { return a.getTyped(conversationCache, rq) }
func (a *App) setRecommendations(rq *request) answer { return a.setTyped(recommendationsCache, rq) }
func (a *App) getRecommendations(rq *request) answer { return a.getTyped(recommendationsCache, rq) }
func (a *App) setPreferences(rq *request) answer     { return a.setTyped(preferencesCache, rq) }
func (a *App) getPreferences(rq *request) answer     { return a.getTyped(preferencesCache, rq) }

// setCache answers POST /valkey/cache/:key with {value, ttl?}; no ttl
// means no expiry.
func (a *App) setCache(rq *request) answer {
	v, present := prop(rq.body, "value")
	ttl, ttlPresent := prop(rq.body, "ttl")
	if !a.storeValue(rq.param(0), v, present, ttl, ttlPresent, rq.now) {
		return vultrError(500, "Failed to set cache")
	}
	return ok(newObject("success", true))
}

// getCache answers GET /valkey/cache/:key with {value}.
func (a *App) getCache(rq *request) answer {
	v, found := a.loadValue(rq.param(0), rq.now)
	if !found || v == nil {
		return vultrError(404, "Cache key not found")
	}
	return ok(newObject("value", v))
}

// deleteCache answers DELETE /valkey/cache/:key.
func (a *App) deleteCache(rq *request) answer {
	return ok(newObject("success", a.kv.del(rq.param(0), rq.now)))
}

// valkeyHealthBody is vultrValkey.healthCheck().
func (a *App) valkeyHealthBody() *object {
	return newObject(
		"status", "healthy",
		"latency", float64(a.latencyFor("valkey.health").Milliseconds()),
		"connectionStatus", "ready",
		"serverInfo", newObject("version", "7.2.4", "mode", "standalone", "keys", float64(a.kv.size())),
	)
}

// valkeyHealth answers GET /valkey/health.
func (a *App) valkeyHealth(*request) answer { return ok(a.valkeyHealthBody()) }

// valkeyMetrics answers GET /valkey/metrics; the rates are the app's
// constants.
func (a *App) valkeyMetrics(*request) answer {
	health := a.valkeyHealthBody()
	avg := 2.0
	if l, _ := health.get("latency"); l.(float64) > 0 {
		avg = l.(float64)
	}
	return ok(newObject(
		"status", "ready",
		"connected", true,
		"health", health,
		"hitRate", 0.85,
		"missRate", 0.15,
		"averageLatency", avg,
		"totalRequests", 1000.0,
	))
}

// valkeyBatch answers POST /valkey/batch: set, get and delete operations
// in order, each with its own result; an unknown type gets no result.
func (a *App) valkeyBatch(rq *request) answer {
	ov, _ := prop(rq.body, "operations")
	ops, isArray := ov.([]any)
	if !isArray {
		return vultrError(400, "operations must be an array")
	}
	results := []any{}
	for _, op := range ops {
		if op == nil {
			// op.type throws; reading op.key in the catch throws again.
			return vultrError(500, "Cannot read properties of null (reading 'key')")
		}
		typ, _ := prop(op, "type")
		keyV, keyOK := prop(op, "key")
		key := redisKey(keyV, keyOK)
		result := newObject("success", true)
		if keyOK {
			result.set("key", keyV)
		}
		switch typ {
		case "set":
			v, present := prop(op, "value")
			ttl, ttlPresent := prop(op, "ttl")
			if !a.storeValue(key, v, present, ttl, ttlPresent, rq.now) {
				result = newObject("success", false)
				if keyOK {
					result.set("key", keyV)
				}
				result.set("error", cacheSetFailed)
			}
		case "get":
			v, _ := a.loadValue(key, rq.now)
			result.set("value", v)
		case "delete":
			a.kv.del(key, rq.now)
		default:
			continue
		}
		results = append(results, result)
	}
	return ok(newObject("results", results))
}
