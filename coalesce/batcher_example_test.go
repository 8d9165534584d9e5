package coalesce_test

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/style-shepherd/sheepdog/coalesce"
)

func ExampleBatcher() {
	// The flush writes a whole batch in one call (a pipeline, a multi-row
	// insert) and answers each item in order.
	flush := func(_ context.Context, names []string) ([]string, error) {
		ids := make([]string, len(names))
		for i, name := range names {
			ids[i] = "mem_" + strings.ToLower(name)
		}
		return ids, nil
	}
	batcher, err := coalesce.NewBatcher(coalesce.BatcherConfig{MaxItems: 100},
		func(name string) int { return len(name) }, flush)
	if err != nil {
		fmt.Println(err)
		return
	}

	// Callers submit concurrently; each waits for its own item's answer.
	names := []string{"Linen", "Denim", "Silk"}
	ids := make([]string, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			ids[i], _ = batcher.Submit(context.Background(), name)
		})
	}
	wg.Wait()

	// Close flushes whatever is still queued before it returns.
	if err := batcher.Close(context.Background()); err != nil {
		fmt.Println(err)
	}
	fmt.Println(ids, batcher.Stats().Items)
	// Output: [mem_linen mem_denim mem_silk] 3
}
