package shepherd

import "strconv"

// The status routes: the simulated stores are always up, so every check
// is healthy, and the management routes answer as the app does without a
// Vultr API key.

func (a *App) inferenceHealth() *object {
	return newObject("status", "healthy", "latency", float64(a.latencyFor("vultr.health").Milliseconds()))
}

// vultrHealth answers GET /api/vultr/health.
func (a *App) vultrHealth(*request) answer {
	return ok(newObject(
		"postgres", a.postgresHealthBody(),
		"valkey", a.valkeyHealthBody(),
		"inference", a.inferenceHealth(),
		"overall", "healthy",
	))
}

// vultrStats answers GET /api/vultr/stats.
func (a *App) vultrStats(*request) answer {
	total, idle, waiting := a.pg.poolStats()
	return ok(newObject(
		"postgres", newObject("totalCount", float64(total), "idleCount", float64(idle), "waitingCount", float64(waiting)),
		"valkey", newObject("status", "ready", "connected", true),
	))
}

// vultrTest answers POST /api/vultr/test: it writes and deletes a test
// key, and reports each service.
func (a *App) vultrTest(rq *request) answer {
	key := "test:" + strconv.FormatInt(rq.now.UnixMilli(), 10)
	a.kv.set(key, "ok", 60, rq.now)
	a.kv.del(key, rq.now)
	return ok(newObject(
		"success", true,
		"results", newObject("postgres", true, "valkey", true, "inference", true),
	))
}

// management answers the /api/vultr/management/* routes: 503, since
// the app has no Vultr API key here.
func (a *App) management(*request) answer {
	return vultrError(503, "Vultr Management API is not available")
}

// managementAccount is the one management route with a longer message.
func (a *App) managementAccount(*request) answer {
	return vultrError(503, "Vultr Management API is not available. Set VULTR_API_KEY or VULTR_MANAGEMENT_API_KEY.")
}

// appHealth answers GET /health, the server's own health check.
func (a *App) appHealth(rq *request) answer {
	return ok(newObject(
		"status", "healthy",
		"services", newObject("postgres", a.postgresHealthBody(), "valkey", a.valkeyHealthBody()),
		"timestamp", isoTime(rq.now),
	))
}

// appIndex answers GET /.
func (a *App) appIndex(*request) answer {
	return ok(newObject(
		"name", "Style Shepherd API",
		"version", "1.0.0",
		"status", "running",
		"endpoints", newObject("health", "/health", "vultr", "/api/vultr", "api", "/api"),
	))
}
