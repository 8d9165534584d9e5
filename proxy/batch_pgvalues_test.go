package proxy

import (
	"context"
	"testing"
)

// TestOrderColumnsAsApp: the app stores what node-postgres makes of
// the parsed body: `status || 'pending'`, String(1.0) = "1" for a text
// column, JSON.stringify("hello") for a JSONB column (adapted from a
// write-path review's test; each case failed before).
func TestOrderColumnsAsApp(t *testing.T) {
	r := newBatchRig(t, batchOptions{storeMemory: "max_wait: 2ms"})
	for _, tc := range []struct{ body, col, want string }{
		{`{"user_id":"u_status","items":[],"total_amount":1,"status":""}`, "status", "pending"},
		{`{"user_id":"u_null","items":[],"total_amount":1,"status":null}`, "status", "pending"},
		{`{"user_id":1.0,"items":[],"total_amount":1}`, "user_id", "1"},
		{`{"user_id":"u_str","items":"hello","total_amount":1}`, "items::text", `"hello"`},
		{`{"user_id":"u_arr","items":"[1,2]","total_amount":1}`, "items::text", `"[1,2]"`},
	} {
		status, answer, _ := r.post(t, "/api/vultr/postgres/orders", tc.body)
		if status != 200 {
			t.Errorf("%s: %d %s, want 200 as the app answers", tc.body, status, answer)
			continue
		}
		var got *string
		err := r.pool.QueryRow(context.Background(),
			`SELECT `+tc.col+` FROM `+r.table+` ORDER BY created_at DESC, order_id LIMIT 1`).Scan(&got)
		if err != nil || got == nil || *got != tc.want {
			s := "<NULL>"
			if got != nil {
				s = *got
			}
			t.Errorf("%s: stored %s = %s (%v), the app stores %s", tc.body, tc.col, s, err, tc.want)
		}
	}
}
