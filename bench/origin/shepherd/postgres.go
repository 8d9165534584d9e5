package shepherd

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// postgres is the app's PostgreSQL tables (user_profiles, orders,
// returns) in memory, with the constraints of the app's init.sql that
// decide whether a write succeeds: NOT NULL, foreign keys, column types.
type postgres struct {
	mu       sync.RWMutex // protects the tables below
	profiles map[string]*profileRow
	orders   map[string]*orderRow
	byUser   map[string][]*orderRow // each user's orders, in insertion order
	returns  []*returnRow           // in insertion order, as a heap scan returns them
	seq      int64                  // insertion counter, breaks created_at ties

	busy   atomic.Int64 // requests holding a pool connection
	opened atomic.Int64 // connections the pool has opened (its high-water mark)
}

// poolMax is the app's pool size.
const poolMax = 20

type profileRow struct {
	userID, email, firstName, lastName string
	preferences, bodyMeasurements      any // JSONB
	created, updated                   time.Time
}

type orderRow struct {
	orderID, userID string
	items           any    // JSONB
	total           string // DECIMAL(10,2)
	status          string
	created         time.Time
	seq             int64
}

type returnRow struct {
	returnID, orderID, productID, userID string
	reason                               *string // TEXT, nullable
	status                               string
	created                              time.Time
}

var (
	firstNames = []string{"Ava", "Liam", "Maya", "Noah", "Zoe", "Ethan", "Iris", "Leo", "Nora", "Kai", "Ruby", "Owen", "Lena", "Milo", "Sofia", "Jonah"}
	lastNames  = []string{"Garcia", "Chen", "Okafor", "Novak", "Silva", "Haddad", "Larsen", "Kim", "Moreau", "Patel", "Rossi", "Walsh"}
	statuses   = []string{"pending", "processing", "shipped", "delivered", "delivered"}
	reasons    = []string{"Too small", "Too large", "Not as pictured", "Changed my mind", "Arrived damaged"}
)

// newPostgres seeds users user_1..user_N, each with up to three orders
// of catalogue products, and a few returns of delivered orders.
func newPostgres(seed int64, users int, cat *catalogue) *postgres {
	pg := &postgres{
		profiles: make(map[string]*profileRow),
		orders:   make(map[string]*orderRow),
		byUser:   make(map[string][]*orderRow),
	}
	pg.opened.Store(2)
	rs := newSeedStream(seed, 0x05E125)
	for i := 1; i <= users; i++ {
		first, last := pick(rs, firstNames), pick(rs, lastNames)
		created := seedEpoch.Add(time.Duration(rs.intn(200*24*3600)) * time.Second)
		p := &profileRow{
			userID:    "user_" + strconv.Itoa(i),
			email:     strings.ToLower(first+"."+last) + strconv.Itoa(i) + "@example.com",
			firstName: first,
			lastName:  last,
			preferences: jsonbValue(newObject(
				"styles", []any{pick(rs, styles), pick(rs, styles)},
				"colors", []any{pick(rs, colors), pick(rs, colors)},
				"sizes", newObject("top", pick(rs, clothingSizes), "bottom", pick(rs, clothingSizes), "shoe", pick(rs, shoeSizes)),
				"budget", newObject("min", float64(rs.between(2, 8)*10), "max", float64(rs.between(15, 60)*10)),
			)),
			bodyMeasurements: jsonbValue(newObject(
				"height_cm", float64(rs.between(150, 195)),
				"weight_kg", float64(rs.between(45, 110)),
				"chest_cm", float64(rs.between(78, 120)),
				"waist_cm", float64(rs.between(60, 110)),
				"hips_cm", float64(rs.between(80, 125)),
			)),
			created: created,
			updated: created.Add(time.Duration(rs.intn(60*24*3600)) * time.Second),
		}
		pg.profiles[p.userID] = p
		for range rs.intn(4) {
			pg.seedOrder(rs, p.userID, cat)
		}
	}
	return pg
}

func (pg *postgres) seedOrder(rs *seedStream, userID string, cat *catalogue) {
	var items []any
	var total int64
	for range rs.between(1, 3) {
		p := &cat.products[rs.intn(len(cat.products))]
		qty := int64(rs.between(1, 2))
		total += p.priceCents * qty
		items = append(items, newObject(
			"product_id", p.id,
			"quantity", float64(qty),
			"price", float64(p.priceCents)/100,
			"size", pick(rs, clothingSizes),
		))
	}
	created := seedEpoch.Add(300 * 24 * time.Hour).Add(time.Duration(rs.intn(60*24*3600)) * time.Second)
	o := &orderRow{
		orderID: "order_" + strconv.FormatInt(created.UnixMilli(), 10) + "_" + seededBase36(rs),
		userID:  userID,
		items:   jsonbValue(items),
		total:   cents(total),
		status:  pick(rs, statuses),
		created: created,
	}
	pg.insertOrder(o)
	if o.status == "delivered" && rs.intn(3) == 0 {
		reason := pick(rs, reasons)
		at := created.Add(time.Duration(rs.between(3, 20)) * 24 * time.Hour)
		first, _ := prop(items[0], "product_id")
		pg.returns = append(pg.returns, &returnRow{
			returnID:  "return_" + strconv.FormatInt(at.UnixMilli(), 10) + "_" + seededBase36(rs),
			orderID:   o.orderID,
			productID: first.(string),
			userID:    userID,
			reason:    &reason,
			status:    pick(rs, []string{"pending", "approved", "refunded"}),
			created:   at,
		})
	}
}

const base36 = "0123456789abcdefghijklmnopqrstuvwxyz"

func seededBase36(rs *seedStream) string {
	var b [9]byte
	for i := range b {
		b[i] = base36[rs.intn(36)]
	}
	return string(b[:])
}

// newRowID is the app's `${prefix}_${Date.now()}_${Math.random().toString(36).substr(2, 9)}`.
func newRowID(prefix string, now time.Time) string {
	var b [9]byte
	for i := range b {
		b[i] = base36[rand.IntN(36)]
	}
	return prefix + "_" + strconv.FormatInt(now.UnixMilli(), 10) + "_" + string(b[:])
}

// insertOrder adds o; the caller holds mu (or owns pg, while seeding).
func (pg *postgres) insertOrder(o *orderRow) {
	pg.seq++
	o.seq = pg.seq
	pg.orders[o.orderID] = o
	pg.byUser[o.userID] = append(pg.byUser[o.userID], o)
}

func (p *profileRow) row() *object {
	return newObject(
		"user_id", p.userID,
		"email", p.email,
		"first_name", nullable(p.firstName),
		"last_name", nullable(p.lastName),
		"preferences", p.preferences,
		"body_measurements", p.bodyMeasurements,
		"created_at", isoTime(p.created),
		"updated_at", isoTime(p.updated),
	)
}

func (o *orderRow) row() *object {
	return newObject(
		"order_id", o.orderID,
		"user_id", o.userID,
		"items", o.items,
		"total_amount", o.total,
		"status", o.status,
		"shipping_info", nil,
		"predicted_return_rate", nil,
		"stripe_payment_intent_id", nil,
		"payment_intent_id", nil,
		"created_at", isoTime(o.created),
		"updated_at", isoTime(o.created),
	)
}

func (r *returnRow) row() *object {
	var reason any
	if r.reason != nil {
		reason = *r.reason
	}
	return newObject(
		"return_id", r.returnID,
		"order_id", r.orderID,
		"product_id", r.productID,
		"user_id", r.userID,
		"reason", reason,
		"status", r.status,
		"created_at", isoTime(r.created),
	)
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// holdConn marks a request holding a pool connection until release.
func (pg *postgres) holdConn() (release func()) {
	busy := pg.busy.Add(1)
	for {
		o := pg.opened.Load()
		if busy <= o || o >= poolMax || pg.opened.CompareAndSwap(o, min(busy, poolMax)) {
			break
		}
	}
	return func() { pg.busy.Add(-1) }
}

// poolStats is the pool's {total, idle, waiting}, as the pg Pool counts.
func (pg *postgres) poolStats() (total, idle, waiting int64) {
	busy := pg.busy.Load()
	total = pg.opened.Load()
	idle = max(total-busy, 0)
	waiting = max(busy-poolMax, 0)
	return total, idle, waiting
}

// getProfile answers GET /postgres/users/:userId/profile.
func (a *App) getProfile(rq *request) answer {
	a.pg.mu.RLock()
	p, found := a.pg.profiles[rq.param(0)]
	var row *object
	if found {
		row = p.row()
	}
	a.pg.mu.RUnlock()
	if !found {
		return vultrError(404, "User not found")
	}
	return ok(row)
}

// saveProfile answers POST /postgres/users/:userId/profile: an upsert
// that only succeeds for an existing user, since the insert branch has
// no email and email is NOT NULL.
func (a *App) saveProfile(rq *request) answer {
	fail := vultrError(500, "Failed to save user profile")
	prefs, okp := prop(rq.body, "preferences")
	body, okb := prop(rq.body, "bodyMeasurements")
	if !truthy(prefs, okp) {
		prefs = &object{}
	}
	if !truthy(body, okb) {
		body = &object{}
	}
	pv, _, err := pgJSONB(prefs, true)
	if err != nil {
		return fail
	}
	bv, _, err := pgJSONB(body, true)
	if err != nil {
		return fail
	}
	a.pg.mu.Lock()
	defer a.pg.mu.Unlock()
	p, found := a.pg.profiles[rq.param(0)]
	if !found {
		return fail // notNull("email")
	}
	p.preferences, p.bodyMeasurements, p.updated = pv, bv, rq.now
	return ok(newObject("success", true))
}

// listOrders answers GET /postgres/users/:userId/orders?limit=N (default
// 50), newest first.
func (a *App) listOrders(rq *request) answer {
	limit := 50.0
	if v, ok := rq.query.joined("limit"); ok {
		if n := parseIntJS(v); !math.IsNaN(n) && n != 0 {
			limit = n
		}
	}
	if limit < 0 || limit >= 1<<63 {
		return vultrError(500, "Failed to fetch order history")
	}
	a.pg.mu.RLock()
	orders := slices.Clone(a.pg.byUser[rq.param(0)])
	a.pg.mu.RUnlock()
	slices.SortFunc(orders, func(x, y *orderRow) int {
		return cmp.Or(y.created.Compare(x.created), cmp.Compare(y.seq, x.seq))
	})
	if int64(len(orders)) > int64(limit) {
		orders = orders[:int64(limit)]
	}
	out := make([]any, len(orders))
	for i, o := range orders {
		out[i] = o.row()
	}
	return ok(out)
}

// createOrder answers POST /postgres/orders with {orderId, ...body}.
func (a *App) createOrder(rq *request) answer {
	fail := vultrError(500, "Failed to create order")
	now := rq.now
	userV, userOK := prop(rq.body, "user_id")
	user, err := pgText(userV, userOK, "user_id", 255)
	if err != nil {
		return fail
	}
	itemsV, itemsOK := prop(rq.body, "items")
	items, present, err := pgJSONB(itemsV, itemsOK)
	if err != nil || !present {
		return fail
	}
	totalV, totalOK := prop(rq.body, "total_amount")
	total, err := pgDecimal2(totalV, totalOK, "total_amount")
	if err != nil {
		return fail
	}
	status := "pending"
	if v, ok := prop(rq.body, "status"); truthy(v, ok) {
		s, err := pgText(v, ok, "status", 50)
		if err != nil {
			return fail
		}
		status = *s
	}
	if user == nil {
		return fail
	}
	o := &orderRow{
		orderID: newRowID("order", now),
		userID:  *user,
		items:   items,
		total:   total,
		status:  status,
		created: now,
	}
	a.pg.mu.Lock()
	_, known := a.pg.profiles[o.userID]
	if known {
		a.pg.insertOrder(o)
	}
	a.pg.mu.Unlock()
	if !known {
		return fail // the orders.user_id foreign key
	}
	return ok(spread("orderId", o.orderID, rq.body))
}

// spread is {key: value, ...body}: body's own properties copied after
// the first key, an array's elements under their indexes.
func spread(key string, value any, body any) *object {
	out := newObject(key, value)
	switch b := body.(type) {
	case *object:
		for _, m := range b.members {
			out.set(m.key, m.val)
		}
	case []any:
		for i, e := range b {
			out.set(strconv.Itoa(i), e)
		}
	}
	return out
}

// listReturns answers GET /postgres/returns?userId&productId.
func (a *App) listReturns(rq *request) answer {
	user, nu := rq.query.get("userId")
	productID, np := rq.query.get("productId")
	byUser := nu > 0 && (user != "" || nu > 1)
	byProduct := np > 0 && (productID != "" || np > 1)
	if byUser {
		user = pgParam(rq.query, "userId", user, nu)
	}
	if byProduct {
		productID = pgParam(rq.query, "productId", productID, np)
	}
	a.pg.mu.RLock()
	defer a.pg.mu.RUnlock()
	out := []any{}
	for _, r := range a.pg.returns {
		if (byUser && r.userID != user) || (byProduct && r.productID != productID) {
			continue
		}
		out = append(out, r.row())
	}
	return ok(out)
}

// createReturn answers POST /postgres/returns with {returnId, ...body}.
func (a *App) createReturn(rq *request) answer {
	fail := vultrError(500, "Failed to record return")
	text := func(key string, maxChars int) (*string, error) {
		v, ok := prop(rq.body, key)
		return pgText(v, ok, key, maxChars)
	}
	orderID, err1 := text("order_id", 255)
	productID, err2 := text("product_id", 255)
	user, err3 := text("user_id", 255)
	reason, err4 := text("reason", 0)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || orderID == nil || productID == nil || user == nil {
		return fail
	}
	r := &returnRow{
		returnID:  newRowID("return", rq.now),
		orderID:   *orderID,
		productID: *productID,
		userID:    *user,
		reason:    reason,
		status:    "pending",
		created:   rq.now,
	}
	a.pg.mu.Lock()
	_, orderKnown := a.pg.orders[r.orderID]
	_, userKnown := a.pg.profiles[r.userID]
	if orderKnown && userKnown {
		a.pg.returns = append(a.pg.returns, r)
	}
	a.pg.mu.Unlock()
	if !orderKnown || !userKnown {
		return fail // the foreign keys to orders and user_profiles
	}
	return ok(spread("returnId", r.returnID, rq.body))
}

// postgresHealthBody is vultrPostgres.healthCheck().
func (a *App) postgresHealthBody() *object {
	total, idle, waiting := a.pg.poolStats()
	return newObject(
		"status", "healthy",
		"latency", float64(a.latencyFor("postgres.health").Milliseconds()),
		"poolStats", newObject("total", float64(total), "idle", float64(idle), "waiting", float64(waiting)),
	)
}

// postgresHealth answers GET /postgres/health.
func (a *App) postgresHealth(*request) answer { return ok(a.postgresHealthBody()) }

// postgresStats answers GET /postgres/stats: pool counts and health.
func (a *App) postgresStats(*request) answer {
	total, idle, waiting := a.pg.poolStats()
	return ok(newObject(
		"totalCount", float64(total),
		"idleCount", float64(idle),
		"waitingCount", float64(waiting),
		"health", a.postgresHealthBody(),
	))
}

// postgresBatch answers POST /postgres/batch. The simulation runs no SQL:
// each well-formed query yields an empty row set.
func (a *App) postgresBatch(rq *request) answer {
	qv, _ := prop(rq.body, "queries")
	queries, isArray := qv.([]any)
	if !isArray {
		return vultrError(400, "queries must be an array")
	}
	results := make([]any, len(queries))
	for i, q := range queries {
		if q == nil {
			return vultrError(500, "Cannot read properties of null (reading 'text')")
		}
		text, ok := prop(q, "text")
		if s, isString := text.(string); !ok || text == nil || (isString && strings.TrimSpace(s) == "") {
			return vultrError(500, "Client was passed a null or undefined query")
		}
		results[i] = []any{}
	}
	return ok(newObject("results", results))
}

// OrdersTableSQL creates table with the columns of the app's orders that
// a write sink fills, as init.sql types them, without the foreign key to
// user_profiles: for tests and benches that write orders into a
// PostgreSQL of their own.
func OrdersTableSQL(table string) string {
	return `CREATE TABLE ` + table + ` (
		order_id TEXT PRIMARY KEY,
		user_id TEXT,
		items JSONB,
		total_amount NUMERIC(10,2),
		status TEXT DEFAULT 'pending',
		created_at TIMESTAMPTZ DEFAULT now())`
}
