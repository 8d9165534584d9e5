package load_test

import (
	"context"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/style-shepherd/sheepdog/bench/load"
)

func ExampleRun() {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("[]") }}
	go srv.Serve(ln)
	defer srv.Shutdown()

	// Products by category, the hottest category most often.
	categories, _ := load.NewZipf(20, 1)
	browse := load.SourceFunc(func(r *rand.Rand, req *fasthttp.Request) string {
		req.SetRequestURI("/api/vultr/postgres/products?category=c" + strconv.Itoa(categories.Next(r)))
		return "read"
	})

	res, err := load.Run(context.Background(), load.Config{
		Target:   "http://" + ln.Addr().String(),
		Source:   browse,
		Requests: 200,
		Duration: 10 * time.Second,
		Clients:  4,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Mode, res.Answered, res.Status.ByClass(), res.Errors.Total())
	// Output: closed 200 map[2xx:200] 0
}
