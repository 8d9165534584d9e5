package upstream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/style-shepherd/sheepdog/bench/origin/shepherd"
	"github.com/style-shepherd/sheepdog/configs"
	"github.com/style-shepherd/sheepdog/upstream"
)

// A batch of store-memory bodies goes to the app's batch endpoint in one
// call; each caller gets its own element of the answer.
func ExampleHTTPSink() {
	app := shepherd.New(shepherd.Config{})
	addr, err := app.Start("127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer app.Close()
	client, err := upstream.New(configs.Upstream{URL: "http://" + addr, Timeout: 5 * time.Second, MaxConns: 8})
	if err != nil {
		fmt.Println(err)
		return
	}
	sink := upstream.NewHTTPSink(client, "/api/raindrop/batch-store-memory", "memories", "results")

	results, err := sink.Flush(context.Background(), []json.RawMessage{
		json.RawMessage(`{"userId":"user_1","text":"prefers linen in summer"}`),
		json.RawMessage(`{"userId":"user_1","text":"wears size M"}`),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range results {
		var elem struct{ Success bool }
		_ = json.Unmarshal(r.Body, &elem)
		fmt.Println(r.Status, elem.Success)
	}
	fmt.Println(app.Stats().Routes["memory.batch"], "call")
	// Output:
	// 200 true
	// 200 true
	// 1 call
}
