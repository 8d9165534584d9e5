package shepherd_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"
	"time"

	"github.com/style-shepherd/sheepdog/bench/origin/shepherd"
)

// An upstream for a test: start it on a free port, slow one route down,
// send traffic, read the counters, close it.
func Example() {
	app := shepherd.New(shepherd.Config{Seed: 1})
	addr, err := app.Start("127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer app.Close()
	app.SetLatency("products", 5*time.Millisecond)

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for range 3 {
		resp, err := client.Get("http://" + addr + "/api/vultr/postgres/products?category=shoes&limit=2")
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, strings.HasPrefix(string(body), `{"success":true,"data":[{"id":"prod_`))
	}
	fmt.Println("products served:", app.Stats().Routes["products"])
	// Output:
	// 200 true
	// 200 true
	// 200 true
	// products served: 3
}
