package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// maxParams is PostgreSQL's limit on the parameters of one statement.
const maxParams = math.MaxUint16

// PostgresItem is one row for the Postgres sink.
type PostgresItem struct {
	// Values holds one value per column, in the sink's column order, as
	// text that PostgreSQL casts to the column's type ("29.99" to
	// NUMERIC, JSON text to JSONB): a string, a json.RawMessage or
	// []byte (its text), or nil (NULL). An empty json.RawMessage is NULL.
	Values []any
}

// PostgresResult is one item's row as the INSERT returned it.
type PostgresResult struct {
	// Returned maps each returning column, named as configured, to its
	// value in the shape the app's answers give it (node-postgres in a
	// UTC process): text, NUMERIC and BIGINT as strings, JSON and JSONB
	// as json.RawMessage, smaller integers and floats as numbers,
	// booleans, timestamps and dates as ISO strings in UTC with
	// milliseconds, NULL as nil. Nil when the sink returns nothing.
	Returned map[string]any
}

// PoolStats is the connection pool in the app's own shape, as its
// /api/vultr/stats and /postgres/stats answers give it.
type PoolStats struct {
	TotalCount int32 `json:"totalCount"`
	IdleCount  int32 `json:"idleCount"`
	// WaitingCount counts this sink's flushes waiting for a connection:
	// pgxpool does not count the other users of a shared pool.
	WaitingCount int32 `json:"waitingCount"`
}

// PostgresSink inserts batches of rows into one table: a multi-row
// INSERT ... RETURNING when the route returns columns, COPY otherwise.
// Either is a single statement, so a batch lands whole or not at all
// without BEGIN and COMMIT round trips. It is safe for concurrent use.
type PostgresSink struct {
	pool      *pgxpool.Pool
	table     string // as configured, for messages
	name      string // for String
	columns   []string
	returning []string
	insert    string // INSERT INTO t (cols) VALUES, rows to follow
	tail      string // " RETURNING cols"
	copy      string // COPY t (cols) FROM STDIN
	qtable    string // the table, quoted

	waiting atomic.Int32 // flushes in pool.Acquire
	// jsonCols marks, by column, those of type json or jsonb, read from
	// the catalog at the first flush that reaches the database.
	jsonCols atomic.Pointer[[]bool]
}

// Flush has the shape coalesce.Batcher calls.
var _ func(context.Context, []PostgresItem) ([]PostgresResult, error) = (*PostgresSink)(nil).Flush

// identifier is a name that needs no quoting rules beyond the quotes:
// PostgreSQL's NAMEDATALEN bounds it to 63 bytes.
var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]{0,62}$`)

// NewPostgresSink returns a sink inserting into table (optionally
// "schema.table") through pool. Names are checked and quoted, so they
// match the catalog's case exactly. With no returning columns each batch
// is a COPY.
func NewPostgresSink(pool *pgxpool.Pool, table string, columns []string, returning []string) (*PostgresSink, error) {
	qtable, err := quoteTable(table)
	if err != nil {
		return nil, fmt.Errorf("postgres sink table: %w", err)
	}
	if len(columns) == 0 {
		return nil, fmt.Errorf("postgres sink %s: no columns", table)
	}
	qcols, err := quoteList(columns)
	if err != nil {
		return nil, fmt.Errorf("postgres sink %s columns: %w", table, err)
	}
	qret, err := quoteList(returning)
	if err != nil {
		return nil, fmt.Errorf("postgres sink %s returning: %w", table, err)
	}
	if pool == nil {
		return nil, fmt.Errorf("postgres sink %s: no pool", table)
	}
	s := &PostgresSink{
		pool:      pool,
		table:     table,
		columns:   append([]string(nil), columns...),
		returning: append([]string(nil), returning...),
		qtable:    qtable,
		insert:    "INSERT INTO " + qtable + " (" + qcols + ") VALUES ",
		copy:      "COPY " + qtable + " (" + qcols + ") FROM STDIN",
	}
	if len(returning) > 0 {
		s.tail = " RETURNING " + qret
	}
	cc := pool.Config().ConnConfig
	s.name = fmt.Sprintf("postgres %s:%d/%s %s", cc.Host, cc.Port, cc.Database, table)
	return s, nil
}

func quoteTable(table string) (string, error) {
	schema, name, qualified := strings.Cut(table, ".")
	if !qualified {
		return quoteIdent(table)
	}
	qs, err := quoteIdent(schema)
	if err != nil {
		return "", err
	}
	qn, err := quoteIdent(name)
	return qs + "." + qn, err
}

func quoteIdent(name string) (string, error) {
	if !identifier.MatchString(name) {
		return "", fmt.Errorf("%q is not a plain identifier", name)
	}
	return `"` + name + `"`, nil
}

// quoteList checks names and returns them quoted and joined by commas.
func quoteList(names []string) (string, error) {
	var b strings.Builder
	seen := make(map[string]bool, len(names))
	for i, n := range names {
		q, err := quoteIdent(n)
		if err != nil {
			return "", err
		}
		if seen[n] {
			return "", fmt.Errorf("%q named twice", n)
		}
		seen[n] = true
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(q)
	}
	return b.String(), nil
}

// Flush inserts one row per item in one statement and returns one result
// per item, in order. Any failure is the batch's, as PostgreSQL refuses
// the statement whole: a constraint one row breaks (a *pgconn.PgError;
// the batcher splits the batch to find the row), an item with the wrong
// number of values, or a database that cannot be reached (ErrUnavailable,
// which the proxy answers 503).
//
// RETURNING rows are mapped to items by position: PostgreSQL inserts a
// VALUES list in order and returns each row as it inserts it. A batch
// whose row count comes back different (a trigger that skips rows) is
// ErrAnswerUnreadable: the statement has committed, so the batch is
// neither retried nor split.
func (s *PostgresSink) Flush(ctx context.Context, items []PostgresItem) ([]PostgresResult, error) {
	if len(items) == 0 {
		return []PostgresResult{}, nil
	}
	known := s.jsonCols.Load()
	var cols []bool
	if known != nil {
		cols = *known
	}
	values, err := s.textValues(items, cols)
	if err != nil {
		return nil, err
	}
	s.waiting.Add(1)
	conn, err := s.pool.Acquire(ctx)
	s.waiting.Add(-1)
	if err != nil {
		return nil, fmt.Errorf("%w (%w)", s.fail(err), ErrNotReached)
	}
	defer conn.Release()
	if known == nil {
		// The first flush to reach the database: now the json columns
		// are known, the values are made again with them.
		if cols = s.jsonColumns(ctx, conn.Conn()); cols != nil {
			if values, err = s.textValues(items, cols); err != nil {
				return nil, err
			}
		}
	}
	if len(s.returning) == 0 {
		return s.copyRows(ctx, conn.Conn().PgConn(), values, len(items))
	}
	return s.insertReturning(ctx, conn.Conn(), values, len(items))
}

// jsonColumns reports, by column, which are json or jsonb, asking the
// catalog once; nil while it cannot tell (the table missing, say: the
// INSERT then fails as it would).
func (s *PostgresSink) jsonColumns(ctx context.Context, conn *pgx.Conn) []bool {
	if known := s.jsonCols.Load(); known != nil {
		return *known
	}
	rows, err := conn.Query(ctx, `SELECT attname, atttypid FROM pg_attribute
		WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped`, s.qtable)
	if err != nil {
		return nil
	}
	isJSON := map[string]bool{}
	for rows.Next() {
		var name string
		var oid uint32
		if rows.Scan(&name, &oid) == nil {
			isJSON[name] = oid == pgtype.JSONOID || oid == pgtype.JSONBOID
		}
	}
	if rows.Err() != nil {
		return nil
	}
	cols := make([]bool, len(s.columns))
	for i, c := range s.columns {
		cols[i] = isJSON[c]
	}
	s.jsonCols.Store(&cols)
	return cols
}

// textValues flattens the items' values, row by row, into strings and
// nils (NULL). A string for a json or jsonb column is sent as a JSON
// string, as the app's JSON.stringify sends it; a json.RawMessage is JSON
// already.
func (s *PostgresSink) textValues(items []PostgresItem, jsonCols []bool) ([]any, error) {
	if n := len(items) * len(s.columns); n > maxParams && len(s.returning) > 0 {
		return nil, fmt.Errorf("postgres %s: %d values in one batch, over PostgreSQL's %d", s.table, n, maxParams)
	}
	values := make([]any, 0, len(items)*len(s.columns))
	for i, it := range items {
		if len(it.Values) != len(s.columns) {
			return nil, fmt.Errorf("postgres %s: item %d has %d values for %d columns", s.table, i, len(it.Values), len(s.columns))
		}
		for j, v := range it.Values {
			switch v := v.(type) {
			case nil:
				values = append(values, nil)
			case string:
				if j < len(jsonCols) && jsonCols[j] {
					values = append(values, string(AppendJSString(nil, v)))
				} else {
					values = append(values, v)
				}
			case json.RawMessage:
				if len(v) == 0 {
					values = append(values, nil)
				} else {
					values = append(values, string(v))
				}
			case []byte:
				values = append(values, string(v))
			default:
				return nil, fmt.Errorf("postgres %s: item %d column %s: value of type %T, want text", s.table, i, s.columns[j], v)
			}
		}
	}
	return values, nil
}

// insertReturning runs INSERT ... VALUES (...),(...) RETURNING ... with
// every parameter sent as text of no declared type, so PostgreSQL gives
// each the type of its column (QueryExecModeExec, one round trip, and no
// prepared statement kept per batch size).
func (s *PostgresSink) insertReturning(ctx context.Context, conn *pgx.Conn, values []any, n int) ([]PostgresResult, error) {
	var sql strings.Builder
	sql.Grow(len(s.insert) + len(s.tail) + n*len(s.columns)*6)
	sql.WriteString(s.insert)
	p := 0
	for i := range n {
		if i > 0 {
			sql.WriteByte(',')
		}
		sql.WriteByte('(')
		for j := range s.columns {
			if j > 0 {
				sql.WriteByte(',')
			}
			p++
			sql.WriteByte('$')
			sql.WriteString(strconv.Itoa(p))
		}
		sql.WriteByte(')')
	}
	sql.WriteString(s.tail)

	args := make([]any, 0, 1+len(values))
	args = append(append(args, pgx.QueryExecModeExec), values...)
	rows, err := conn.Query(ctx, sql.String(), args...)
	if err != nil {
		return nil, s.fail(err)
	}
	defer rows.Close()
	fields := rows.FieldDescriptions()
	results := make([]PostgresResult, 0, n)
	for rows.Next() {
		raw := rows.RawValues()
		row := make(map[string]any, len(fields))
		for i, f := range fields {
			row[s.returning[i]] = appValue(conn.TypeMap(), f, raw[i])
		}
		results = append(results, PostgresResult{Returned: row})
	}
	// The statement's own error (a constraint, a lost connection) comes
	// after its rows, so no row counts until Err has been read.
	if err := rows.Err(); err != nil {
		return nil, s.fail(err)
	}
	if len(results) != n {
		return nil, answerError("postgres "+s.table, fmt.Errorf("%d rows returned for %d items", len(results), n))
	}
	return results, nil
}

// copyRows sends the rows in COPY's text format, where PostgreSQL reads
// each field with its column's input function, as it does a literal.
// pgx writes the rows right behind the COPY command, so the batch costs
// one round trip.
func (s *PostgresSink) copyRows(ctx context.Context, conn *pgconn.PgConn, values []any, n int) ([]PostgresResult, error) {
	var data bytes.Buffer
	cols := len(s.columns)
	for i, v := range values {
		if i%cols > 0 {
			data.WriteByte('\t')
		}
		if v == nil {
			data.WriteString(`\N`)
		} else {
			text, _ := v.(string) // textValues makes strings and nils only
			writeCopyText(&data, text)
		}
		if i%cols == cols-1 {
			data.WriteByte('\n')
		}
	}
	tag, err := conn.CopyFrom(ctx, &data, s.copy)
	if err != nil {
		return nil, s.fail(err)
	}
	if tag.RowsAffected() != int64(n) {
		return nil, answerError("postgres "+s.table, fmt.Errorf("%d rows copied for %d items", tag.RowsAffected(), n))
	}
	return make([]PostgresResult, n), nil
}

// writeCopyText writes v escaped for COPY's text format, where a
// backslash starts an escape and tabs and newlines end fields and rows.
func writeCopyText(b *bytes.Buffer, v string) {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		default:
			b.WriteByte(c)
		}
	}
}

// appValue turns one returned field, in text format, into the value
// node-postgres would give the app for it.
func appValue(m *pgtype.Map, f pgconn.FieldDescription, raw []byte) any {
	if raw == nil {
		return nil
	}
	if f.Format != pgtype.TextFormatCode {
		return nil // not reached: QueryExecModeExec asks for text
	}
	switch f.DataTypeOID {
	case pgtype.JSONOID, pgtype.JSONBOID:
		// node-postgres parses JSON, and the app's answer writes it again.
		if js, err := appendNodeJSON(nil, raw); err == nil {
			return json.RawMessage(js)
		}
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.OIDOID:
		if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
			return n
		}
	case pgtype.Float4OID, pgtype.Float8OID:
		if x, err := strconv.ParseFloat(string(raw), 64); err == nil {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil // JSON.stringify writes them as null
			}
			return x
		}
	case pgtype.BoolOID:
		return len(raw) > 0 && raw[0] == 't'
	case pgtype.TimestamptzOID, pgtype.TimestampOID, pgtype.DateOID:
		// A Date in the app, which JSON.stringify writes with toISOString.
		var t time.Time
		if err := m.Scan(f.DataTypeOID, pgtype.TextFormatCode, raw, &t); err == nil {
			return t.UTC().Format("2006-01-02T15:04:05.000Z")
		}
	}
	// Text, NUMERIC, BIGINT and everything else node-postgres leaves as
	// text; also the fallback for a value the cases above cannot read.
	return string(raw)
}

// fail wraps a statement's error. PostgreSQL's refusals of the batch are
// returned as they are; a database that cannot be reached or cannot take
// writes is also marked ErrUnavailable.
func (s *PostgresSink) fail(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && !storeWide(pgErr.Code) {
		return fmt.Errorf("postgres %s: %w", s.table, err)
	}
	return storeError("postgres "+s.table, err)
}

// storeWide reports whether a PostgreSQL error code refuses every write,
// not this batch: connection exceptions (08), insufficient resources
// (53), shutdown (57P01-57P03), failed login (28), a missing database
// (3D000), or a read-only server (25006).
func storeWide(code string) bool {
	switch {
	case strings.HasPrefix(code, "08"), strings.HasPrefix(code, "53"), strings.HasPrefix(code, "28"):
		return true
	}
	switch code {
	case "57P01", "57P02", "57P03", "3D000", "25006":
		return true
	}
	return false
}

// PoolStats returns the pool's counts in the app's shape.
func (s *PostgresSink) PoolStats() PoolStats {
	st := s.pool.Stat()
	return PoolStats{TotalCount: st.TotalConns(), IdleCount: st.IdleConns(), WaitingCount: s.waiting.Load()}
}

// String names the sink's target for logs.
func (s *PostgresSink) String() string { return s.name }
