package coalesce_test

import (
	"context"
	"fmt"
	"time"

	"github.com/style-shepherd/sheepdog/coalesce"
)

func ExampleFlight() {
	flight := coalesce.Flight[string]{Timeout: 10 * time.Second}
	r := flight.Do(context.Background(), "products?category=tops", func(ctx context.Context) (string, error) {
		return "[...catalogue...]", nil // one upstream fetch, however many callers wait
	})
	fmt.Println(r.Value, r.Leader, r.Err)
	// Output: [...catalogue...] true <nil>
}
