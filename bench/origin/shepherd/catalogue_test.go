package shepherd

import (
	"bytes"
	"math"
	"strconv"
	"testing"
)

// products returns the rows the products route answers for a query,
// checking the status and the envelope on the way.
func products(t *testing.T, app *App, query string) []map[string]any {
	t.Helper()
	resp := call(t, app, "GET", vultr+"/postgres/products"+query, "", "X-Request-Id", "r")
	if resp.StatusCode() != 200 {
		t.Fatalf("products%s = %d: %s", query, resp.StatusCode(), resp.Body())
	}
	var rows []map[string]any
	for _, r := range data(t, resp).([]any) {
		rows = append(rows, r.(map[string]any))
	}
	return rows
}

func price(t *testing.T, row map[string]any) float64 {
	t.Helper()
	s, isString := row["price"].(string)
	if !isString {
		t.Fatalf("price %v is not a NUMERIC string", row["price"])
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestCatalogueDeterministic(t *testing.T) {
	body := func(seed int64) []byte {
		resp := call(t, New(Config{Seed: seed, Now: fixedClock}), "GET", vultr+"/postgres/products", "", "X-Request-Id", "r")
		return resp.Body()
	}
	if a, b := body(7), body(7); !bytes.Equal(a, b) {
		t.Errorf("seed 7 gave different catalogues")
	}
	if a, b := body(7), body(8); bytes.Equal(a, b) {
		t.Errorf("seeds 7 and 8 gave the same catalogue")
	}
	if a, b := body(0), body(1); !bytes.Equal(a, b) {
		t.Errorf("seed 0 is not the default seed 1")
	}
	if n := len(products(t, New(Config{Products: 37}), "")); n != 37 {
		t.Errorf("Products 37 gave %d rows", n)
	}
	if n := len(products(t, New(Config{}), "")); n != 200 {
		t.Errorf("default catalogue has %d rows, want 200", n)
	}
}

func TestCatalogueRows(t *testing.T) {
	rows := products(t, New(Config{}), "")
	for i, r := range rows {
		if _, isArray := r["sizes"].([]any); !isArray {
			t.Fatalf("row %d: sizes %v is not JSONB array", i, r["sizes"])
		}
		if emb, _ := r["embedding"].([]any); len(emb) != 8 {
			t.Fatalf("row %d: embedding %v", i, r["embedding"])
		}
		for _, k := range []string{"price", "rating", "return_risk"} {
			s, _ := r[k].(string)
			if len(s) < 4 || s[len(s)-3] != '.' {
				t.Fatalf("row %d: %s = %v, want a 2-decimal string", i, k, r[k])
			}
		}
		if _, isNumber := r["stock"].(float64); !isNumber {
			t.Fatalf("row %d: stock %v is not a number", i, r["stock"])
		}
		if i == 0 {
			continue
		}
		prev, cur := rows[i-1], r
		pr, _ := strconv.ParseFloat(prev["rating"].(string), 64)
		cr, _ := strconv.ParseFloat(cur["rating"].(string), 64)
		if pr < cr || (pr == cr && prev["reviews_count"].(float64) < cur["reviews_count"].(float64)) {
			t.Fatalf("rows %d and %d not in rating, reviews_count order", i-1, i)
		}
	}
}

func TestProductFilters(t *testing.T) {
	app := New(Config{Now: fixedClock})
	all := products(t, app, "")
	count := func(keep func(map[string]any) bool) int {
		n := 0
		for _, r := range all {
			if keep(r) {
				n++
			}
		}
		return n
	}
	cases := []struct {
		name, query string
		want        int
		each        func(map[string]any) bool
	}{
		{"category", "?category=shoes", count(func(r map[string]any) bool { return r["category"] == "shoes" }), func(r map[string]any) bool { return r["category"] == "shoes" }},
		{"brand", "?brand=Sable", count(func(r map[string]any) bool { return r["brand"] == "Sable" }), func(r map[string]any) bool { return r["brand"] == "Sable" }},
		{"encoded brand", "?brand=Linen+%26+Loom", count(func(r map[string]any) bool { return r["brand"] == "Linen & Loom" }), nil},
		{"price range inclusive", "?minPrice=50&maxPrice=100.5", count(func(r map[string]any) bool { p := price(t, r); return p >= 50 && p <= 100.5 }), nil},
		{"limit", "?limit=5", 5, nil},
		{"limit after filter", "?category=tops&limit=2", 2, func(r map[string]any) bool { return r["category"] == "tops" }},
		{"limit 0", "?limit=0", 0, nil},
		{"limit parsed like parseInt", "?limit=3abc", 3, nil},
		{"empty values ignored", "?category=&brand=&minPrice=&limit=", len(all), nil},
		{"other parameters ignored", "?id=prod_0001&sort=price&page=2", len(all), nil},
		{"unknown category", "?category=hats", 0, nil},
		{"repeated category matches nothing", "?category=shoes&category=tops", 0, nil},
		{"minPrice NaN matches nothing", "?minPrice=abc", 0, nil},
		{"maxPrice NaN matches everything", "?maxPrice=abc", len(all), nil},
		{"minPrice Infinity", "?minPrice=Infinity", 0, nil},
		{"maxPrice -Infinity", "?maxPrice=-Infinity", 0, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rows := products(t, app, tc.query)
			if len(rows) != tc.want {
				t.Fatalf("%s: %d rows, want %d", tc.query, len(rows), tc.want)
			}
			for _, r := range rows {
				if tc.each != nil && !tc.each(r) {
					t.Fatalf("%s: row %v does not match", tc.query, r["id"])
				}
			}
		})
	}
	t.Run("same filter, same bytes whatever else is asked", func(t *testing.T) {
		a := call(t, app, "GET", vultr+"/postgres/products?category=shoes&id=1", "", "X-Request-Id", "r")
		b := call(t, app, "GET", vultr+"/postgres/products?id=2&category=shoes", "", "X-Request-Id", "r")
		if !bytes.Equal(a.Body(), b.Body()) {
			t.Errorf("the ignored id parameter changed the answer")
		}
	})
	for _, q := range []string{"?limit=-1", "?limit=abc", "?limit=99999999999999999999"} {
		t.Run("bad "+q, func(t *testing.T) {
			resp := call(t, app, "GET", vultr+"/postgres/products"+q, "")
			if resp.StatusCode() != 500 || decode(t, resp)["error"] != "Failed to fetch products" {
				t.Errorf("%s = %d %s, want the route's 500", q, resp.StatusCode(), resp.Body())
			}
		})
	}
}

func TestParseIntFloatJS(t *testing.T) {
	nan := math.NaN()
	ints := []struct {
		in   string
		want float64
	}{
		{"42", 42}, {"  42px", 42}, {"-7", -7}, {"+3", 3}, {"0x1F", 31}, {"3.9", 3},
		{"", nan}, {"abc", nan}, {"-", nan}, {"0x", nan}, {"1e3", 1},
		{"99999999999999999999", 1e20},
	}
	for _, tc := range ints {
		t.Run("parseInt "+tc.in, func(t *testing.T) {
			got := parseIntJS(tc.in)
			if got != tc.want && !(math.IsNaN(got) && math.IsNaN(tc.want)) {
				t.Errorf("parseInt(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
	floats := []struct {
		in   string
		want float64
	}{
		{"29.99", 29.99}, {" 1.5e2x", 150}, {".5", 0.5}, {"5.", 5}, {"-0.25", -0.25},
		{"1e", 1}, {"Infinity", math.Inf(1)}, {"-Infinityx", math.Inf(-1)},
		{"", nan}, {".", nan}, {"e5", nan}, {"0x10", 0}, {"1e999", math.Inf(1)},
	}
	for _, tc := range floats {
		t.Run("parseFloat "+tc.in, func(t *testing.T) {
			got := parseFloatJS(tc.in)
			if got != tc.want && !(math.IsNaN(got) && math.IsNaN(tc.want)) {
				t.Errorf("parseFloat(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}
