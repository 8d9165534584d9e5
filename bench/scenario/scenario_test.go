package scenario

import (
	"context"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/bench/load"
	"github.com/style-shepherd/sheepdog/bench/origin/shepherd"
)

const seededUsers = 20

// startApp runs the simulated app until the test ends and reads its seed.
func startApp(t *testing.T) (*shepherd.App, string, *Seed) {
	t.Helper()
	app := shepherd.New(shepherd.Config{Users: seededUsers})
	addr, err := app.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	seed, err := Discover(context.Background(), "http://"+addr, seededUsers)
	if err != nil {
		t.Fatal(err)
	}
	return app, addr, seed
}

// draw returns n requests from src, with their kinds.
func draw(t *testing.T, src load.Source, n int) ([]*fasthttp.Request, []string) {
	t.Helper()
	rnd := rand.New(rand.NewPCG(1, 2))
	var reqs []*fasthttp.Request
	var kinds []string
	for range n {
		req := new(fasthttp.Request)
		kinds = append(kinds, src.Next(rnd, req))
		reqs = append(reqs, req)
	}
	return reqs, kinds
}

func TestDiscoverReadsTheSeededApp(t *testing.T) {
	_, _, seed := startApp(t)
	if len(seed.Users) != seededUsers || seed.Users[0] != "user_1" {
		t.Errorf("users %v", seed.Users)
	}
	if len(seed.Categories) != 8 || len(seed.Brands) != 10 || len(seed.Products) != 200 {
		t.Errorf("%d categories, %d brands, %d products; want the catalogue's 8, 10, 200",
			len(seed.Categories), len(seed.Brands), len(seed.Products))
	}
	if len(seed.Orders) == 0 {
		t.Fatal("no seeded orders found")
	}
	for _, o := range seed.Orders {
		if !strings.HasPrefix(o.ID, "order_") || !slices.Contains(seed.Users, o.UserID) || !strings.HasPrefix(o.ProductID, "prod_") {
			t.Errorf("order %+v", o)
		}
	}
}

func TestEveryRequestIsOneTheAppAccepts(t *testing.T) {
	app, addr, seed := startApp(t)
	client := &fasthttp.HostClient{Addr: addr}
	tests := []struct {
		scenario string
		kinds    []string
	}{
		{"browse", []string{KindProducts, KindProfile, KindOrders, KindSearch}},
		{"herd", []string{KindHerd}},
		{"write-burst", []string{KindStoreMemory, KindCreateOrder, KindCreateReturn, KindCacheSet}},
		{"mixed", []string{KindProducts, KindProfile, KindOrders, KindSearch, KindUpdateProfile, KindCreateOrder, KindStoreMemory}},
		{"failover", []string{KindProducts, KindProfile, KindOrders, KindSearch}},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			sc, err := New(tt.scenario, seed)
			if err != nil {
				t.Fatal(err)
			}
			before := app.Stats().Total
			reqs, kinds := draw(t, sc.NewSource(), 400)
			resp := new(fasthttp.Response)
			for i, req := range reqs {
				req.SetHost(addr)
				if err := client.DoTimeout(req, resp, 5*time.Second); err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode() != fasthttp.StatusOK {
					t.Fatalf("%s %s %s: %d %s", kinds[i], req.Header.Method(), req.RequestURI(), resp.StatusCode(), resp.Body())
				}
			}
			if got := app.Stats().Total - before; got != uint64(len(reqs)) {
				t.Errorf("the app counted %d requests, want %d", got, len(reqs))
			}
			slices.Sort(kinds)
			got := slices.Compact(kinds)
			want := slices.Sorted(slices.Values(tt.kinds))
			if !slices.Equal(got, want) {
				t.Errorf("kinds %v, want %v", got, want)
			}
		})
	}
}

func TestProductsQueriesUseTheAppsParameters(t *testing.T) {
	_, _, seed := startApp(t)
	sc, err := New("browse", seed)
	if err != nil {
		t.Fatal(err)
	}
	reqs, kinds := draw(t, sc.NewSource(), 4000)
	allowed := []string{"category", "brand", "minPrice", "maxPrice", "limit", "id"}
	products, withID := 0, 0
	for i, req := range reqs {
		if kinds[i] != KindProducts {
			continue
		}
		products++
		q, err := url.ParseQuery(string(req.URI().QueryString()))
		if err != nil {
			t.Fatal(err)
		}
		for k := range q {
			if !slices.Contains(allowed, k) {
				t.Errorf("%s has parameter %q", req.RequestURI(), k)
			}
		}
		if maxPrice, _ := strconv.Atoi(q.Get("maxPrice")); maxPrice >= 1000 {
			t.Errorf("%s: a browse query took the herd's price range", req.RequestURI())
		}
		if q.Has("id") {
			withID++
		}
	}
	if share := float64(withID) / float64(products); share < idShare-0.05 || share > idShare+0.05 {
		t.Errorf("%.2f of products requests carry ?id=, want about %.2f", share, idShare)
	}
}

func TestHerdKeyIsColdForEachRow(t *testing.T) {
	_, _, seed := startApp(t)
	sc, err := New("herd", seed)
	if err != nil {
		t.Fatal(err)
	}
	if !sc.Burst || !sc.Reads {
		t.Errorf("herd: Burst %v, Reads %v; want both", sc.Burst, sc.Reads)
	}
	seen := map[string]bool{}
	for row := range 3 {
		reqs, _ := draw(t, sc.NewSource(), 20)
		uri := string(reqs[0].RequestURI())
		for _, req := range reqs {
			if string(req.RequestURI()) != uri {
				t.Fatalf("row %d sends %s and %s; a herd asks for one key", row, uri, req.RequestURI())
			}
		}
		if seen[uri] {
			t.Errorf("row %d repeats %s", row, uri)
		}
		seen[uri] = true
	}
}

func TestTrafficShape(t *testing.T) {
	_, _, seed := startApp(t)
	tests := []struct {
		scenario string
		// check looks at the kinds drawn and the users of profile reads.
		check func(kinds map[string]int, profileUsers map[string]int) string
	}{
		{"mixed", func(kinds map[string]int, _ map[string]int) string {
			w := kinds[KindUpdateProfile] + kinds[KindCreateOrder] + kinds[KindStoreMemory]
			if share := float64(w) / 10000; share < 0.08 || share > 0.12 {
				return "writes are " + strconv.FormatFloat(share, 'f', 3, 64) + " of mixed, want about 0.10"
			}
			return ""
		}},
		{"browse", func(_ map[string]int, users map[string]int) string {
			if users["user_1"] <= 2*users["user_5"] || users["user_5"] == 0 {
				return "profile reads per user " + strconv.Itoa(users["user_1"]) + " (user_1) and " +
					strconv.Itoa(users["user_5"]) + " (user_5): want the first user about five times as hot"
			}
			return ""
		}},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			sc, err := New(tt.scenario, seed)
			if err != nil {
				t.Fatal(err)
			}
			reqs, drawn := draw(t, sc.NewSource(), 10000)
			kinds, users := map[string]int{}, map[string]int{}
			for i, req := range reqs {
				kinds[drawn[i]]++
				if drawn[i] == KindProfile {
					users[strings.Split(string(req.URI().Path()), "/")[5]]++
				}
			}
			if msg := tt.check(kinds, users); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func TestNewRefusesWhatItCannotBuild(t *testing.T) {
	good := &Seed{Users: []string{"user_1"}, Categories: []string{"tops"}, Brands: []string{"Sable"},
		Products: []Product{{ID: "prod_1", Price: "10.00"}}}
	tests := []struct {
		name     string
		scenario string
		seed     *Seed
		want     string
	}{
		{"unknown scenario", "stampede", good, "no scenario"},
		{"no seed", "browse", nil, "no seed"},
		{"empty seed", "browse", &Seed{}, "needs users"},
		{"bad price", "write-burst", &Seed{Users: good.Users, Categories: good.Categories, Brands: good.Brands,
			Products: []Product{{ID: "prod_1", Price: "ten"}}}, "price"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.scenario, tt.seed); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want an error with %q", err, tt.want)
			}
		})
	}
	for _, name := range Names() {
		if _, err := New(name, good); err != nil || !Known(name) {
			t.Errorf("New(%q) on a minimal seed: %v", name, err)
		}
	}
}

func TestEveryScenarioSaysWhatItSends(t *testing.T) {
	for _, name := range Names() {
		if About(name) == "" {
			t.Errorf("scenario %q has no description", name)
		}
	}
	if About("stampede") != "" {
		t.Error("an unknown scenario has a description")
	}
}
