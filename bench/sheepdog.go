package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/style-shepherd/sheepdog/bench/compare"
	"github.com/style-shepherd/sheepdog/configs"
)

// modulePath is the module the bench builds Sheepdog from.
const modulePath = "github.com/style-shepherd/sheepdog"

// sheepdogStartTimeout bounds Sheepdog's start, from exec to a 200 from
// its admin /stats.
const sheepdogStartTimeout = 15 * time.Second

// goTool finds the go command: on PATH, or in the toolchain that built
// the bench.
func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		return "", errors.New("the go command is not on PATH: give -sheepdog-bin")
	}
	return p, nil
}

// moduleRoot is the directory of Sheepdog's go.mod, found from the current
// directory as the go command finds it.
func moduleRoot(ctx context.Context) (string, error) {
	gobin, err := goTool()
	if err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, gobin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the sheepdog module: run the bench from it, or give -sheepdog-bin")
	}
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	if !bytes.HasPrefix(data, []byte("module "+modulePath+"\n")) {
		return "", fmt.Errorf("%s is not %s's: run the bench from the sheepdog module, or give -sheepdog-bin", gomod, modulePath)
	}
	return filepath.Dir(gomod), nil
}

// buildSheepdog runs "go build -o DIR/sheepdog ." in the module root, as
// a child in its own process group, so that a Ctrl-C during the build
// stops the compilers it started too.
func buildSheepdog(ctx context.Context, root, dir string) (string, error) {
	gobin, err := goTool()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "sheepdog")
	p, err := compare.Start(compare.Command{
		Name: "go build", Path: gobin, Args: []string{"build", "-o", bin, "."},
		Dir: root, Log: filepath.Join(dir, "build.log"),
	})
	if err != nil {
		return "", err
	}
	defer p.Stop(time.Second) // returns at once when the build has ended
	select {
	case <-p.Exited():
		if err := p.Err(); err != nil {
			return "", fmt.Errorf("go build: %v\n%s", err, p.LogTail(30))
		}
		return bin, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// sheepdogPlace is where the bench runs Sheepdog: its own addresses, the
// origin, and the bench's Valkey ("" when the config has no L2).
type sheepdogPlace struct {
	listen, admin, upstream, valkey string
}

// env is what ${SHEEPDOG_UPSTREAM} and ${VALKEY_ADDR} read, for any other
// place the config names them (a sink's own addrs, say).
func (p sheepdogPlace) env() map[string]string {
	env := map[string]string{"SHEEPDOG_UPSTREAM": "http://" + p.upstream}
	if p.valkey != "" {
		env["VALKEY_ADDR"] = p.valkey
	}
	return env
}

// lookup reads the process environment with p's variables on top.
func (p sheepdogPlace) lookup(name string) (string, bool) {
	if v, ok := p.env()[name]; ok {
		return v, true
	}
	return os.LookupEnv(name)
}

// placeConfig rewrites a Sheepdog config for the bench: listen,
// admin.listen and upstream.url replaced (or added), cache.l2.addrs too
// when p names a Valkey (the suite names one only for a config that has
// an L2), everything else (routes, TTLs, comments) kept.
// The config may read ${SHEEPDOG_UPSTREAM} and ${VALKEY_ADDR} as it
// likes: Sheepdog runs with both set to the same places.
func placeConfig(data []byte, p sheepdogPlace) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc.Kind == 0 { // an empty file
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode}}}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, errors.New("the config is not a mapping")
	}
	set := func(value *yaml.Node, path ...string) error {
		m := root
		for _, key := range path[:len(path)-1] {
			next := member(m, key)
			if next == nil {
				next = &yaml.Node{Kind: yaml.MappingNode}
				m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, next)
			}
			if next.Kind != yaml.MappingNode {
				return fmt.Errorf("%s is not a mapping", key)
			}
			m = next
		}
		last := path[len(path)-1]
		if old := member(m, last); old != nil {
			*old = *value
		} else {
			m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: last}, value)
		}
		return nil
	}
	str := func(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }
	err := errors.Join(
		set(str(p.listen), "listen"),
		set(str(p.admin), "admin", "listen"),
		set(str("http://"+p.upstream), "upstream", "url"),
	)
	if p.valkey != "" {
		addrs := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle, Content: []*yaml.Node{str(p.valkey)}}
		err = errors.Join(err, set(addrs, "cache", "l2", "addrs"))
	}
	if err != nil {
		return nil, err
	}
	return yaml.Marshal(&doc)
}

// member is the value under key in mapping m, or nil.
func member(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// sheepdogConfig reads the -config file: relative paths are tried in the
// current directory, then in the module root, so that the default works
// from anywhere in the module; without the module, the default is the
// copy embedded in the configs package.
func sheepdogConfig(path, root string) (name string, data []byte, err error) {
	data, err = os.ReadFile(path)
	if err == nil || filepath.IsAbs(path) || !errors.Is(err, os.ErrNotExist) {
		return path, data, err
	}
	if root != "" {
		inRoot := filepath.Join(root, path)
		if data, err := os.ReadFile(inRoot); err == nil {
			return inRoot, data, nil
		}
	}
	if path == defaultConfig {
		data, err := configs.ExampleFile(filepath.Base(defaultConfig))
		return defaultConfig + " (embedded)", data, err
	}
	return path, nil, err
}

// hasL2 reports whether the config, as it stands, gives Sheepdog an L2.
// Any error is the config's, named by file, line and key.
func hasL2(name string, data []byte, p sheepdogPlace) (bool, error) {
	cfg, err := configs.ParseWithEnv(name, data, p.lookup)
	if err != nil {
		return false, err
	}
	return len(cfg.Cache.L2.Addrs) > 0, nil
}

// startSheepdog runs bin with the config at path, and returns once its
// admin /stats answers 200 and its client port accepts connections.
func startSheepdog(ctx context.Context, bin, path, dir string, p sheepdogPlace) (*compare.Process, error) {
	env := os.Environ()
	for k, v := range p.env() {
		env = append(env, k+"="+v)
	}
	proc, err := compare.Start(compare.Command{
		Name: "sheepdog", Path: bin, Args: []string{"-config", path}, Env: env,
		Log: filepath.Join(dir, "sheepdog.log"),
	})
	if err != nil {
		return nil, err
	}
	listening := compare.Listening(p.listen)
	ready := func(ctx context.Context) error {
		if _, err := adminStats(ctx, p.admin); err != nil {
			return err
		}
		return listening(ctx)
	}
	if err := proc.WaitReady(ctx, sheepdogStartTimeout, ready); err != nil {
		proc.Stop(time.Second)
		return nil, err
	}
	return proc, nil
}

// adminStats GETs Sheepdog's admin /stats and decodes it as plain JSON.
func adminStats(ctx context.Context, admin string) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/stats", nil)
	if err != nil {
		return nil, err
	}
	req.Close = true // read twice a row: no connection kept between
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("admin /stats: %s", resp.Status)
	}
	var stats any
	if err := json.Unmarshal(body, &stats); err != nil {
		return nil, fmt.Errorf("admin /stats: %w", err)
	}
	return stats, nil
}

// batchCount is what Sheepdog's batchers have flushed so far.
type batchCount struct{ batches, items uint64 }

// batchTotals finds the batch counters in a /stats answer. /stats has no
// fixed place for them yet (the write path adds them), so any object that
// holds a number "batches" (or "flushes") beside a number "items" (or
// "batched_items") counts, such as a route's {"batch": {"batches": 12,
// "items": 340}}; all of them are summed, and nothing inside a counted
// object is counted again. found is false when there is no such object.
func batchTotals(stats any) (total batchCount, found bool) {
	var children []any
	switch v := stats.(type) {
	case map[string]any:
		batches, okB := firstNumber(v, "batches", "flushes")
		items, okI := firstNumber(v, "items", "batched_items")
		if okB && okI {
			return batchCount{batches, items}, true
		}
		for _, child := range v {
			children = append(children, child)
		}
	case []any:
		children = v
	}
	for _, child := range children {
		if t, ok := batchTotals(child); ok {
			total.batches += t.batches
			total.items += t.items
			found = true
		}
	}
	return total, found
}

// firstNumber is the first of keys in m that holds a non-negative number.
func firstNumber(m map[string]any, keys ...string) (uint64, bool) {
	for _, k := range keys {
		if f, ok := m[k].(float64); ok && f >= 0 {
			return uint64(f), true
		}
	}
	return 0, false
}
