package main

import (
	"math/rand/v2"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/bench/load"
)

// valkeyKeys is how many distinct keys the Valkey rows write, through
// Sheepdog and redis-benchmark alike.
const valkeyKeys = 1000

// valkeyTTL is the TTL, in seconds, of every key the Valkey rows write:
// a key the cleanup misses is gone within a minute anyway.
const valkeyTTL = 60

// writeSink is one of the three stores the write-batching bench writes
// through Sheepdog, with the requests that write it.
type writeSink struct {
	name  string // the table's: "postgres", "store-memory", "valkey"
	route string // the Sheepdog route, as configs/sheepdog.yaml names it
	kind  string // the load.Source's kind
	next  func(keyPrefix string) load.Source
}

// writeSinks are the sinks in the order the bench measures them.
var writeSinks = []writeSink{
	{name: "postgres", route: "create-order", kind: "create-order", next: func(string) load.Source { return load.SourceFunc(newOrder) }},
	{name: "store-memory", route: "store-memory", kind: "store-memory", next: func(string) load.Source { return load.SourceFunc(newMemory) }},
	{name: "valkey", route: "cache-set", kind: "cache-set", next: cacheSets},
}

// writeSinkNames lists the sinks, in the order the bench measures them.
func writeSinkNames() []string {
	names := make([]string, len(writeSinks))
	for i, s := range writeSinks {
		names[i] = s.name
	}
	return names
}

// newOrder is an order as the app's front end posts it: one item, a total.
func newOrder(rnd *rand.Rand, req *fasthttp.Request) string {
	post(req, "/api/vultr/postgres/orders")
	user, product, size := rnd.IntN(seededUsers)+1, rnd.IntN(200)+1, []string{"S", "M", "L"}[rnd.IntN(3)]
	price := strconv.Itoa(10+rnd.IntN(90)) + ".99"
	req.SetBodyString(`{"user_id":"user_` + strconv.Itoa(user) + `","items":[{"product_id":"prod_` +
		strconv.Itoa(product) + `","quantity":1,"price":` + price + `,"size":"` + size + `"}],"total_amount":` +
		price + `,"status":"pending"}`)
	return "create-order"
}

// newMemory is a working memory as the app's assistant stores it.
func newMemory(rnd *rand.Rand, req *fasthttp.Request) string {
	post(req, "/api/raindrop/store-memory")
	req.SetBodyString(`{"userId":"user_` + strconv.Itoa(rnd.IntN(seededUsers)+1) +
		`","type":"working","text":"Liked a look, note ` + strconv.Itoa(rnd.IntN(1e6)) +
		`","metadata":{"source":"sheepdog-bench"}}`)
	return "store-memory"
}

// cacheSets sets keys keyPrefix:sd:N, N below valkeyKeys, with a TTL.
func cacheSets(keyPrefix string) load.Source {
	return load.SourceFunc(func(rnd *rand.Rand, req *fasthttp.Request) string {
		n := strconv.Itoa(rnd.IntN(valkeyKeys))
		post(req, "/api/vultr/valkey/cache/"+keyPrefix+":sd:"+n)
		req.SetBodyString(`{"value":{"views":` + n + `},"ttl":` + strconv.Itoa(valkeyTTL) + `}`)
		return "cache-set"
	})
}

// valkeyValue is a value of the size cacheSets writes, for redis-benchmark.
const valkeyValue = `{"views":500}`

func post(req *fasthttp.Request, path string) {
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI(path)
	req.Header.SetContentType("application/json")
}
