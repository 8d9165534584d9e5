package shepherd

import (
	"cmp"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"
)

// seedStream is a small deterministic generator (SplitMix64), so a seed
// gives the same catalogue on every Go version and machine.
type seedStream struct{ state uint64 }

func newSeedStream(seed int64, salt uint64) *seedStream {
	return &seedStream{state: uint64(seed)*0x9E3779B97F4A7C15 ^ salt}
}

func (s *seedStream) next() uint64 {
	s.state += 0x9E3779B97F4A7C15
	z := s.state
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// intn returns a number in [0, n).
func (s *seedStream) intn(n int) int { return int(s.next() % uint64(n)) }

// between returns a number in [lo, hi].
func (s *seedStream) between(lo, hi int) int { return lo + s.intn(hi-lo+1) }

func pick[T any](s *seedStream, from []T) T { return from[s.intn(len(from))] }

// seedEpoch anchors every seeded timestamp, so they do not depend on when
// the app starts.
var seedEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// product is one catalog row. Money is held in cents and ratings in
// hundredths, as the DECIMAL columns hold them exactly.
type product struct {
	id, category, brand string
	priceCents          int64
	rating              int // hundredths
	reviews             int
	row                 rawJSON // the row as node-postgres hands it to res.json
}

// catalogue is the seeded catalog table, already in the products route's
// order (rating DESC, reviews_count DESC, then id). It never changes.
type catalogue struct {
	products []product
}

type categorySpec struct {
	name     string
	items    []string
	sizes    []string
	minCents int
	maxCents int
}

var (
	categories = []categorySpec{
		{"tops", []string{"T-Shirt", "Blouse", "Oxford Shirt", "Tank Top", "Polo"}, clothingSizes, 1500, 9000},
		{"bottoms", []string{"Jeans", "Chinos", "Wide-Leg Trousers", "Shorts", "Pleated Skirt"}, clothingSizes, 2500, 14000},
		{"dresses", []string{"Midi Dress", "Maxi Dress", "Wrap Dress", "Slip Dress", "Shirt Dress"}, clothingSizes, 3500, 22000},
		{"outerwear", []string{"Blazer", "Trench Coat", "Puffer Jacket", "Denim Jacket", "Parka"}, clothingSizes, 6000, 45000},
		{"shoes", []string{"Sneakers", "Loafers", "Ankle Boots", "Sandals", "Block Heels"}, shoeSizes, 4000, 26000},
		{"accessories", []string{"Tote Bag", "Leather Belt", "Silk Scarf", "Beanie", "Sunglasses"}, []string{"One Size"}, 1200, 18000},
		{"activewear", []string{"Leggings", "Sports Bra", "Track Jacket", "Running Shorts"}, clothingSizes, 2000, 11000},
		{"knitwear", []string{"Cardigan", "Crewneck Sweater", "Turtleneck", "Knit Vest"}, clothingSizes, 3000, 25000},
	}
	clothingSizes = []string{"XS", "S", "M", "L", "XL", "XXL"}
	shoeSizes     = []string{"36", "37", "38", "39", "40", "41", "42", "43", "44", "45"}
	brands        = []string{"Northwind", "Atelier Nova", "Urban Thread", "Linen & Loom", "Coastline", "Maison Verre", "Kestrel", "Field Notes", "Sable", "Juniper Row"}
	colors        = []string{"black", "white", "navy", "beige", "olive", "burgundy", "grey", "camel", "blush", "forest green", "cobalt"}
	styles        = []string{"casual", "formal", "streetwear", "minimalist", "bohemian", "vintage", "sporty", "classic"}
	materials     = []string{"organic cotton", "linen", "merino wool", "recycled polyester", "cashmere blend", "denim", "vegan leather", "silk"}
	cuts          = []string{"Relaxed", "Slim-Fit", "Oversized", "Cropped", "Tailored", "Classic", "Everyday", "Essential"}
)

// newCatalogue generates n products from seed.
func newCatalogue(seed int64, n int) *catalogue {
	rs := newSeedStream(seed, 0xCA7A10)
	c := &catalogue{products: make([]product, n)}
	for i := range c.products {
		c.products[i] = newProduct(rs, i+1)
	}
	slices.SortFunc(c.products, func(a, b product) int {
		return cmp.Or(cmp.Compare(b.rating, a.rating), cmp.Compare(b.reviews, a.reviews), strings.Compare(a.id, b.id))
	})
	return c
}

func newProduct(rs *seedStream, n int) product {
	cat := pick(rs, categories)
	item := pick(rs, cat.items)
	brand := pick(rs, brands)
	color := pick(rs, colors)
	style := pick(rs, styles)
	material := pick(rs, materials)
	cut := pick(rs, cuts)
	p := product{
		id:         fmt.Sprintf("prod_%04d", n),
		category:   cat.name,
		brand:      brand,
		priceCents: int64(rs.between(cat.minCents/100, cat.maxCents/100))*100 + int64(pick(rs, []int{0, 50, 95, 99})),
		rating:     rs.between(250, 500),
		reviews:    rs.intn(2500),
	}
	// Contiguous run of sizes, at least one.
	first := rs.intn(len(cat.sizes))
	last := first + rs.intn(len(cat.sizes)-first)
	sizes := make([]any, 0, last-first+1)
	for _, s := range cat.sizes[first : last+1] {
		sizes = append(sizes, s)
	}
	embedding := make([]any, 8)
	for k := range embedding {
		embedding[k] = float64(rs.between(-10000, 10000)) / 10000
	}
	created := seedEpoch.Add(time.Duration(rs.intn(300*24*3600)) * time.Second).Add(time.Duration(rs.intn(1000)) * time.Millisecond)
	updated := created.Add(time.Duration(rs.intn(30*24*3600)) * time.Second)
	row := newObject(
		"id", p.id,
		"name", cut+" "+titleWords(color)+" "+item,
		"description", fmt.Sprintf("A %s %s %s from %s in %s.", style, color, strings.ToLower(item), brand, material),
		"price", cents(p.priceCents),
		"category", cat.name,
		"brand", brand,
		"color", color,
		"style", style,
		"sizes", sizes,
		"stock", float64(rs.intn(500)),
		"image_url", "https://cdn.example.com/style-shepherd/products/"+p.id+".jpg",
		"rating", cents(int64(p.rating)),
		"reviews_count", float64(p.reviews),
		"created_at", isoTime(created),
		"updated_at", isoTime(updated),
		"embedding", embedding,
		"popularity", float64(rs.intn(101)),
		"return_risk", cents(int64(rs.between(2, 45))),
	)
	p.row = appendJSON(nil, row)
	return p
}

func titleWords(s string) string {
	words := strings.Fields(s)
	for i, w := range words {
		words[i] = strings.ToUpper(w[:1]) + w[1:]
	}
	return strings.Join(words, " ")
}

// cents formats hundredths as a DECIMAL(…, 2) column arrives: "29.99".
func cents(v int64) string {
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	return sign + strconv.FormatInt(v/100, 10) + "." + fmt.Sprintf("%02d", v%100)
}

// productFilter is the products route's WHERE and LIMIT, from the query.
type productFilter struct {
	category, brand string
	hasCategory     bool
	hasBrand        bool
	min, max        *jsNumber // nil: no bound
	limit           int64     // -1: no LIMIT
}

// jsNumber is a number as parseFloat produced it and node-postgres sends
// it: finite values compare exactly, as NUMERIC does.
type jsNumber struct {
	f   float64
	rat *big.Rat // nil unless finite
}

func newJSNumber(f float64) *jsNumber {
	n := &jsNumber{f: f}
	if !math.IsNaN(f) && !math.IsInf(f, 0) {
		n.rat, _ = new(big.Rat).SetString(string(appendJSNumber(nil, f)))
	}
	return n
}

// cmpCents compares a price in cents with n as PostgreSQL's NUMERIC
// does: NaN sorts above every number, infinities at their ends.
func (n *jsNumber) cmpCents(c int64) int {
	switch {
	case math.IsNaN(n.f), math.IsInf(n.f, 1):
		return -1
	case math.IsInf(n.f, -1):
		return 1
	}
	return big.NewRat(c, 100).Cmp(n.rat)
}

// filterError is a query the database refuses; the route answers 500.
type filterError struct{ msg string }

func (e *filterError) Error() string { return e.msg }

// parseProductFilter reads category, brand, minPrice, maxPrice and limit
// the way the route does (truthiness, parseFloat, parseInt); every other
// parameter is ignored.
func parseProductFilter(q queryArgs) (productFilter, error) {
	f := productFilter{limit: -1}
	if v, n := q.get("category"); n > 0 && (v != "" || n > 1) {
		f.hasCategory = true
		f.category = pgParam(q, "category", v, n)
	}
	if v, n := q.get("brand"); n > 0 && (v != "" || n > 1) {
		f.hasBrand = true
		f.brand = pgParam(q, "brand", v, n)
	}
	if v, ok := q.joined("minPrice"); ok && v != "" {
		f.min = newJSNumber(parseFloatJS(v))
	}
	if v, ok := q.joined("maxPrice"); ok && v != "" {
		f.max = newJSNumber(parseFloatJS(v))
	}
	if v, ok := q.joined("limit"); ok && v != "" {
		n := parseIntJS(v)
		if math.IsNaN(n) || math.IsInf(n, 0) || n != math.Trunc(n) || math.Abs(n) >= 1<<63 {
			return f, &filterError{`invalid input syntax for type bigint: "` + jsString(n) + `"`}
		}
		if n < 0 {
			return f, &filterError{"LIMIT must not be negative"}
		}
		f.limit = int64(n)
	}
	return f, nil
}

// pgParam is how node-postgres sends a query value: a repeated key is an
// array, sent as an array literal that no text column equals.
func pgParam(q queryArgs, key, first string, n int) string {
	if n == 1 {
		return first
	}
	var parts []string
	for _, a := range q {
		if a.key == key {
			parts = append(parts, strconv.Quote(a.value))
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// list returns the rows the filter selects, in the route's order.
func (c *catalogue) list(f productFilter) []any {
	size := len(c.products)
	if f.limit >= 0 && f.limit < int64(size) {
		size = int(f.limit)
	}
	out := make([]any, 0, size)
	for i := range c.products {
		if f.limit >= 0 && int64(len(out)) >= f.limit {
			break
		}
		p := &c.products[i]
		if f.hasCategory && p.category != f.category {
			continue
		}
		if f.hasBrand && p.brand != f.brand {
			continue
		}
		if f.min != nil && f.min.cmpCents(p.priceCents) < 0 {
			continue
		}
		if f.max != nil && f.max.cmpCents(p.priceCents) > 0 {
			continue
		}
		out = append(out, p.row)
	}
	return out
}

// byID returns the product with the given id.
func (c *catalogue) byID(id string) (*product, bool) {
	for i := range c.products {
		if c.products[i].id == id {
			return &c.products[i], true
		}
	}
	return nil, false
}

// products answers GET /api/vultr/postgres/products.
func (a *App) products(rq *request) answer {
	f, err := parseProductFilter(rq.query)
	if err != nil {
		return vultrError(500, "Failed to fetch products")
	}
	return ok(a.catalogue.list(f))
}

// parseIntJS is JavaScript's parseInt(s) with no radix.
func parseIntJS(s string) float64 {
	s = strings.TrimLeft(s, jsSpace)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	base := 10
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		base, s = 16, s[2:]
	}
	end := 0
	for end < len(s) && digitValue(s[end]) < base {
		end++
	}
	if end == 0 {
		return math.NaN()
	}
	var v float64
	if base == 10 {
		v, _ = strconv.ParseFloat(s[:end], 64) // correctly rounded, as JavaScript's is
	} else {
		for k := 0; k < end; k++ {
			v = v*16 + float64(digitValue(s[k]))
		}
	}
	if neg {
		v = -v
	}
	return v
}

func digitValue(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10
	}
	return 99
}

// jsSpace is the whitespace parseInt and parseFloat skip (the ASCII part
// and the common Unicode spaces).
const jsSpace = " \t\n\v\f\r\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"

// parseFloatJS is JavaScript's parseFloat(s): the longest decimal prefix.
func parseFloatJS(s string) float64 {
	s = strings.TrimLeft(s, jsSpace)
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	if strings.HasPrefix(s[i:], "Infinity") {
		if s[0] == '-' {
			return math.Inf(-1)
		}
		return math.Inf(1)
	}
	digits := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
		digits++
	}
	if i < len(s) && s[i] == '.' {
		j := i + 1
		frac := 0
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
			frac++
		}
		if digits > 0 || frac > 0 {
			i = j
			digits += frac
		}
	}
	if digits == 0 {
		return math.NaN()
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		k := j
		for k < len(s) && s[k] >= '0' && s[k] <= '9' {
			k++
		}
		if k > j {
			i = k
		}
	}
	f, _ := strconv.ParseFloat(s[:i], 64) // range errors give ±Inf or 0, as in JavaScript
	return f
}
