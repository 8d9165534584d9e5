package scenario

import (
	"encoding/json"
	"math/rand/v2"
	"net/url"
	"strconv"
	"sync/atomic"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/bench/load"
)

// The request kinds reads report under.
const (
	KindProducts = "products"
	KindProfile  = "profile"
	KindOrders   = "orders"
	KindSearch   = "search-memory"
	KindHerd     = "products-cold"
)

// zipfExponent is web traffic's usual skew.
const zipfExponent = 1.0

// idShare is the share of products requests that carry the front end's
// ?id=X, which the app ignores.
const idShare = 0.3

// searchWords are what users search their memories for.
var searchWords = []string{"linen", "wedding", "summer", "office", "black", "vintage", "denim", "travel", "gift", "running"}

// reads builds the read requests of the browse, herd and failover
// scenarios. It is shared by many workers: everything in it is read only.
type reads struct {
	seed     *Seed
	users    *users
	queries  []string // products request URIs, hottest first
	queryPop *load.Zipf
	wordPop  *load.Zipf
	browse   load.Source
}

func newReads(seed *Seed) (*reads, error) {
	u, err := newUsers(seed.Users)
	if err != nil {
		return nil, err
	}
	r := &reads{seed: seed, users: u, queries: productQueries(seed)}
	if r.queryPop, err = load.NewZipf(len(r.queries), zipfExponent); err != nil {
		return nil, err
	}
	if r.wordPop, err = load.NewZipf(len(searchWords), zipfExponent); err != nil {
		return nil, err
	}
	r.browse, err = load.NewMix(
		load.Weighted{Weight: 50, Source: load.SourceFunc(r.products)},
		load.Weighted{Weight: 20, Source: load.SourceFunc(r.profile)},
		load.Weighted{Weight: 15, Source: load.SourceFunc(r.orders)},
		load.Weighted{Weight: 15, Source: load.SourceFunc(r.search)},
	)
	return r, err
}

// productQueries lists the products queries users ask, the most asked
// first: a whole category, then a brand within it, then a price band, each
// with the limits the front end uses.
func productQueries(seed *Seed) []string {
	const path = "/api/vultr/postgres/products?"
	var out []string
	for _, limit := range []string{"20", "10", "50"} {
		for _, c := range seed.Categories {
			out = append(out, path+"category="+url.QueryEscape(c)+"&limit="+limit)
		}
	}
	for _, b := range seed.Brands {
		for _, c := range seed.Categories {
			out = append(out, path+"category="+url.QueryEscape(c)+"&brand="+url.QueryEscape(b)+"&limit=20")
		}
	}
	for _, band := range [][2]string{{"0", "50"}, {"50", "100"}, {"100", "200"}, {"200", "500"}} {
		for _, c := range seed.Categories {
			out = append(out, path+"category="+url.QueryEscape(c)+"&minPrice="+band[0]+"&maxPrice="+band[1]+"&limit=20")
		}
	}
	return out
}

func (r *reads) products(rnd *rand.Rand, req *fasthttp.Request) string {
	uri := r.queries[r.queryPop.Next(rnd)]
	if rnd.Float64() < idShare {
		uri += "&id=" + url.QueryEscape(r.seed.Products[rnd.IntN(len(r.seed.Products))].ID)
	}
	req.SetRequestURI(uri)
	return KindProducts
}

func (r *reads) profile(rnd *rand.Rand, req *fasthttp.Request) string {
	req.SetRequestURI("/api/vultr/postgres/users/" + r.users.next(rnd).id + "/profile")
	return KindProfile
}

func (r *reads) orders(rnd *rand.Rand, req *fasthttp.Request) string {
	uri := "/api/vultr/postgres/users/" + r.users.next(rnd).id + "/orders"
	if rnd.IntN(2) == 0 {
		uri += "?limit=10"
	}
	req.SetRequestURI(uri)
	return KindOrders
}

// search is the memory search the assistant runs: a read sent as POST.
func (r *reads) search(rnd *rand.Rand, req *fasthttp.Request) string {
	post(req, "/api/raindrop/search-memory")
	req.AppendBodyString(`{"userId":`)
	req.AppendBody(r.users.next(rnd).quoted)
	req.AppendBodyString(`,"q":"` + searchWords[r.wordPop.Next(rnd)] + `","topK":10}`)
	return KindSearch
}

// herd returns a function that gives each row its own source of one
// products query never asked before in the run: no browse query names a
// maxPrice of 1000 or more.
func (r *reads) herd() func() load.Source {
	var rows atomic.Int64
	return func() load.Source {
		uri := "/api/vultr/postgres/products?category=" + url.QueryEscape(r.seed.Categories[0]) +
			"&maxPrice=" + strconv.FormatInt(1000+rows.Add(1), 10) + "&limit=20"
		return load.SourceFunc(func(_ *rand.Rand, req *fasthttp.Request) string {
			req.SetRequestURI(uri)
			return KindHerd
		})
	}
}

// user is a user id and its JSON form.
type user struct {
	id     string
	quoted []byte
}

// users draws users by popularity: the first is the hottest.
type users struct {
	all []user
	pop *load.Zipf
}

func newUsers(ids []string) (*users, error) {
	pop, err := load.NewZipf(len(ids), zipfExponent)
	if err != nil {
		return nil, err
	}
	u := &users{pop: pop}
	for _, id := range ids {
		u.all = append(u.all, user{id: id, quoted: quote(id)})
	}
	return u, nil
}

func (u *users) next(rnd *rand.Rand) *user { return &u.all[u.pop.Next(rnd)] }

// quote is s as a JSON string. Bodies are built by appending such pieces,
// without reflection, since the load generator shares the machine's cores
// with the servers it measures.
func quote(s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}

// post makes req a JSON POST to uri; the caller appends the body.
func post(req *fasthttp.Request, uri string) {
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.SetRequestURI(uri)
}
