package configs_test

import (
	"errors"
	"fmt"

	"github.com/style-shepherd/sheepdog/configs"
)

func ExampleLoad() {
	cfg, err := configs.Load("minimal.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	r := cfg.Routes[0]
	fmt.Println(r.Name, r.Match.PathPrefix, r.Action(), cfg.Upstream.Timeout)
	// Output: everything-else /api/ pass 10s
}

func ExampleParse() {
	_, err := configs.Parse("bad.yaml", []byte(`upstream:
  url: http://127.0.0.1:3001
  timout: 5s
routes:
  - name: products
    match: {method: GET, path: /api/vultr/postgres/products}
    cache: {ttl: 6x}
`))
	fmt.Println(err)

	var list configs.ErrorList
	if errors.As(err, &list) {
		fmt.Println(len(list), "problems; the first is at line", list[0].Line, "key", list[0].Key)
	}
	// Output:
	// bad.yaml:3: upstream.timout: unknown key (known: url, timeout, max_conns, idle_timeout, health_path)
	// bad.yaml:7: routes[0](products).cache.ttl: bad duration "6x"
	// 2 problems; the first is at line 3 key upstream.timout
}

func ExampleParseWithEnv() {
	env := map[string]string{"SHEEPDOG_UPSTREAM": "http://127.0.0.1:4000"}
	lookup := func(name string) (string, bool) { v, ok := env[name]; return v, ok }
	data, err := configs.ExampleFile("minimal.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg, err := configs.ParseWithEnv("minimal.yaml", data, lookup)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.Upstream.URL)
	// Output: http://127.0.0.1:4000
}

func ExampleParseTemplate() {
	t, err := configs.ParseTemplate("memory:{body.userId=demo_user}")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range t {
		if p.IsLiteral() {
			fmt.Printf("literal %q\n", p.Literal)
		} else {
			fmt.Printf("%s %s default %q\n", p.Source, p.Name, p.Default)
		}
	}
	// Output:
	// literal "memory:"
	// body userId default "demo_user"
}
