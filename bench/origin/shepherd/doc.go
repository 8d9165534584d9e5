// Package shepherd is a simulated Style Shepherd server: every route of
// the app's API (shared/API.md) with the real Node/Express server's
// paths, methods, status codes, bodies, envelope, errors and headers,
// over in-memory stores. Sheepdog's integration tests, its -demo mode and
// its bench suite use it as the upstream.
//
// # Route names
//
// Stats, SetLatency and Config.RouteLatency name routes:
//
//	/api/vultr/postgres/health                        GET     postgres.health
//	/api/vultr/postgres/products                      GET     products
//	/api/vultr/postgres/users/:userId/profile         GET     profile.get
//	                                                  POST    profile.post
//	/api/vultr/postgres/users/:userId/orders          GET     orders.list
//	/api/vultr/postgres/orders                        POST    orders.create
//	/api/vultr/postgres/returns                       GET     returns.list
//	                                                  POST    returns.create
//	/api/vultr/postgres/stats                         GET     postgres.stats
//	/api/vultr/postgres/batch                         POST    postgres.batch
//	/api/vultr/valkey/health                          GET     valkey.health
//	/api/vultr/valkey/session/:sessionId              POST    session.set
//	                                                  GET     session.get
//	                                                  DELETE  session.delete
//	/api/vultr/valkey/session/:sessionId/touch        POST    session.touch
//	/api/vultr/valkey/cache/conversation/:userId      POST    conversation.set
//	                                                  GET     conversation.get
//	/api/vultr/valkey/cache/recommendations/:userId   POST    recommendations.set
//	                                                  GET     recommendations.get
//	/api/vultr/valkey/cache/preferences/:userId       POST    preferences.set
//	                                                  GET     preferences.get
//	/api/vultr/valkey/cache/:key                      POST    cache.set
//	                                                  GET     cache.get
//	                                                  DELETE  cache.delete
//	/api/vultr/valkey/metrics                         GET     valkey.metrics
//	/api/vultr/valkey/batch                           POST    valkey.batch
//	/api/vultr/health                                 GET     vultr.health
//	/api/vultr/stats                                  GET     vultr.stats
//	/api/vultr/test                                   POST    vultr.test
//	/api/vultr/management/...  (7 routes, all 503)    GET     management
//	/api/raindrop/store-memory                        POST    memory.store
//	/api/raindrop/batch-store-memory                  POST    memory.batch
//	/api/raindrop/search-memory                       POST    memory.search
//	/api/raindrop/delete-memory                       POST    memory.delete
//	/api/raindrop/update-memory                       POST    memory.update
//	/api/raindrop/clear-memory                        POST    memory.clear
//	/api/raindrop/export-memory                       GET     memory.export
//	/api/raindrop/memory-stats                        GET     memory.stats
//	/health, /                                        GET     app.health, app.index
//	any OPTIONS (CORS preflight)                              preflight
//	anything else (404 {"error":"Route not found"})           notfound
//	/__origin/echo                                    any     echo
//
// GET routes also answer HEAD; paths match case-insensitively with an
// optional trailing slash, as Express routes do.
//
// # What the app does, and so this does
//
//   - Bodies without a top-level success or error key are wrapped as
//     {"success":true,"data":…,"requestId":…,"timestamp":…}; others get
//     requestId and timestamp added. requestId is X-Request-Id or a UUID.
//   - Helmet's headers and CORS (Origin reflected, credentials allowed)
//     on every answer; Vary: Origin, Accept-Encoding; an Express weak
//     ETag, with 304 for a matching If-None-Match; gzip (or deflate) from
//     1 KB when accepted; Content-Type application/json; charset=utf-8.
//   - JSON and urlencoded bodies up to 10 MB (decoded), gzip or deflate
//     request bodies inflated. Refusals use the error handler's shape
//     {"error":{code,message,statusCode,timestamp}} with body-parser's
//     statuses: 400 ENTITY_PARSE_FAILED, 413 ENTITY_TOO_LARGE, 415
//     CHARSET_UNSUPPORTED or ENCODING_UNSUPPORTED.
//   - JSON comes back the way Node writes it: compact, JavaScript number
//     form, integer-like keys first; JSONB columns come back with
//     PostgreSQL's key order (shorter keys first).
//   - Writes obey the app's schema: an order or return needs a user that
//     exists (user_1..user_N are seeded; see Config.Users), a return an
//     existing order; POST profile only updates an existing user, since
//     its insert has no email. Those failures are the routes' 500s.
//   - Valkey values are stored as the app stores them (a string as its
//     text, anything else as JSON; SETEX with a positive integer TTL) and
//     read back with JSON.parse, so an alias like cache/session:ID reads
//     what session/ID wrote.
//   - Raindrop answers as the app's mock store does (source "mock"), with
//     zod's validation messages in VALIDATION_ERROR details.
//
// Simplifications: POST /postgres/batch runs no SQL (each query gives an
// empty row set); urlencoded bodies are parsed flat (no a[b] nesting); a
// body over 64 MB is refused with 413 before the app sees its type.
//
// # Test aids
//
// Under /__origin/, outside the app and without its middleware:
// GET stats (Stats as JSON, not counted), POST latency?route=NAME&ms=N
// (route "*" is the default; negative ms returns a route to it), POST
// reset (zeroes the counters), and ANY echo (see EchoBytes and the echo
// route's headers), counted as "echo".
package shepherd
