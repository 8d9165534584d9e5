package scenario

import (
	"errors"
	"math/rand/v2"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/bench/load"
)

// The request kinds writes report under.
const (
	KindStoreMemory   = "store-memory"
	KindCreateOrder   = "create-order"
	KindCreateReturn  = "create-return"
	KindCacheSet      = "cache-set"
	KindUpdateProfile = "update-profile"
)

// cacheKeys is how many distinct raw Valkey keys cache sets write.
const cacheKeys = 1000

var (
	sizes   = []string{"XS", "S", "M", "L", "XL"}
	reasons = []string{"Too small", "Too large", "Not as pictured", "Changed my mind"}
	styles  = []string{"minimalist", "bohemian", "classic", "streetwear", "preppy"}
)

// writes builds the write requests of write-burst and mixed, each one the
// app accepts: orders and returns name seeded users, returns name seeded
// orders.
type writes struct {
	users   *users
	orders  []order
	product []product

	burst        load.Source // write-burst: every kind of write
	invalidating load.Source // mixed: writes that drop what browse cached
}

// order and product are a seed's rows with their JSON pieces made once.
type order struct{ id, user, product []byte }

type product struct{ id, price []byte }

func newWrites(seed *Seed, u *users) (*writes, error) {
	w := &writes{users: u}
	for _, p := range seed.Products {
		if _, err := strconv.ParseFloat(p.Price, 64); err != nil {
			return nil, errors.New("scenario: product " + p.ID + " has price " + strconv.Quote(p.Price))
		}
		w.product = append(w.product, product{id: quote(p.ID), price: []byte(p.Price)})
	}
	for _, o := range seed.Orders {
		w.orders = append(w.orders, order{id: quote(o.ID), user: quote(o.UserID), product: quote(o.ProductID)})
	}
	parts := []load.Weighted{
		{Weight: 35, Source: load.SourceFunc(w.storeMemory)},
		{Weight: 25, Source: load.SourceFunc(w.createOrder)},
		{Weight: 25, Source: load.SourceFunc(w.cacheSet)},
	}
	if len(w.orders) > 0 { // a return needs an order to name
		parts = append(parts, load.Weighted{Weight: 15, Source: load.SourceFunc(w.createReturn)})
	}
	var err error
	if w.burst, err = load.NewMix(parts...); err != nil {
		return nil, err
	}
	w.invalidating, err = load.NewMix(
		load.Weighted{Weight: 1, Source: load.SourceFunc(w.updateProfile)},
		load.Weighted{Weight: 1, Source: load.SourceFunc(w.createOrder)},
		load.Weighted{Weight: 1, Source: load.SourceFunc(w.storeMemory)},
	)
	return w, err
}

func (w *writes) storeMemory(rnd *rand.Rand, req *fasthttp.Request) string {
	post(req, "/api/raindrop/store-memory")
	req.AppendBodyString(`{"userId":`)
	req.AppendBody(w.users.next(rnd).quoted)
	req.AppendBodyString(`,"type":"working","text":"Liked a ` + styles[rnd.IntN(len(styles))] +
		` look, note ` + strconv.Itoa(rnd.IntN(1e6)) + `","metadata":{"source":"sheepdog-bench"}}`)
	return KindStoreMemory
}

func (w *writes) createOrder(rnd *rand.Rand, req *fasthttp.Request) string {
	p := &w.product[rnd.IntN(len(w.product))]
	post(req, "/api/vultr/postgres/orders")
	req.AppendBodyString(`{"user_id":`)
	req.AppendBody(w.users.next(rnd).quoted)
	req.AppendBodyString(`,"items":[{"product_id":`)
	req.AppendBody(p.id)
	req.AppendBodyString(`,"quantity":1,"price":`)
	req.AppendBody(p.price)
	req.AppendBodyString(`,"size":"` + sizes[rnd.IntN(len(sizes))] + `"}],"total_amount":`)
	req.AppendBody(p.price)
	req.AppendBodyString(`,"status":"pending"}`)
	return KindCreateOrder
}

func (w *writes) createReturn(rnd *rand.Rand, req *fasthttp.Request) string {
	o := &w.orders[rnd.IntN(len(w.orders))]
	post(req, "/api/vultr/postgres/returns")
	req.AppendBodyString(`{"order_id":`)
	req.AppendBody(o.id)
	req.AppendBodyString(`,"product_id":`)
	req.AppendBody(o.product)
	req.AppendBodyString(`,"user_id":`)
	req.AppendBody(o.user)
	req.AppendBodyString(`,"reason":"` + reasons[rnd.IntN(len(reasons))] + `"}`)
	return KindCreateReturn
}

// cacheSet writes one of the app's raw Valkey keys, as its recommendation
// code does, with a TTL.
func (w *writes) cacheSet(rnd *rand.Rand, req *fasthttp.Request) string {
	n := strconv.Itoa(rnd.IntN(cacheKeys))
	post(req, "/api/vultr/valkey/cache/bench:viewed:"+n)
	req.AppendBodyString(`{"value":{"product":`)
	req.AppendBody(w.product[rnd.IntN(len(w.product))].id)
	req.AppendBodyString(`,"views":` + n + `},"ttl":300}`)
	return KindCacheSet
}

func (w *writes) updateProfile(rnd *rand.Rand, req *fasthttp.Request) string {
	post(req, "/api/vultr/postgres/users/"+w.users.next(rnd).id+"/profile")
	req.AppendBodyString(`{"preferences":{"styles":["` + styles[rnd.IntN(len(styles))] + `"],"colors":["black","white"]}}`)
	return KindUpdateProfile
}
