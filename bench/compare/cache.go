package compare

import (
	"context"
	_ "embed"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"text/template"
	"time"
)

// Setup is where one cache runs in a bench run.
type Setup struct {
	// Dir is a directory of the cache's own for its config, cache files,
	// logs and work files; it is created if missing.
	Dir string
	// Listen is the cache's address, 127.0.0.1:PORT.
	Listen string
	// Origin is the origin's address, 127.0.0.1:PORT.
	Origin string
}

// Cache is a caching proxy the bench compares Sheepdog with.
type Cache struct {
	// Name is the row's target name and the -compare word.
	Name string
	// Binary is the program looked up on PATH.
	Binary string
	// Caveat is what a reader of its rows should know, for the report.
	Caveat string
	// command writes the cache's config under s.Dir and says how to run it.
	command func(bin string, s Setup) (Command, error)
}

// Caches lists the caches -compare knows, in report order.
func Caches() []Cache {
	return []Cache{
		{Name: "nginx", Binary: "nginx", command: nginxCommand,
			Caveat: "nginx: proxy_cache with proxy_cache_lock; requests waiting on a cold key poll for it every 500ms"},
		{Name: "varnish", Binary: "varnishd", command: varnishCommand,
			Caveat: "varnish: malloc storage; POST search-memory passes to the origin, since core VCL cannot key on a body"},
	}
}

// Lookup finds the cache named name ("nginx" or "varnish").
func Lookup(name string) (Cache, bool) {
	for _, c := range Caches() {
		if c.Name == name {
			return c, true
		}
	}
	return Cache{}, false
}

// Installed returns the path of the cache's program, or false when it is
// not on PATH. The bench never installs anything.
func (c Cache) Installed() (string, bool) {
	path, err := exec.LookPath(c.Binary)
	return path, err == nil
}

// startTimeout bounds a cache's start: Varnish compiles its VCL with the
// C compiler first, which takes a second or two on a busy machine.
const startTimeout = 20 * time.Second

// Start writes the cache's config under s.Dir, starts it, and returns once
// it accepts connections on s.Listen. On any failure nothing is left
// running.
func (c Cache) Start(ctx context.Context, bin string, s Setup) (*Process, error) {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("%s: %w", c.Name, err)
	}
	cmd, err := c.command(bin, s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Name, err)
	}
	p, err := Start(cmd)
	if err != nil {
		return nil, err
	}
	if err := p.WaitReady(ctx, startTimeout, Listening(s.Listen)); err != nil {
		p.Stop(time.Second)
		return nil, err
	}
	return p, nil
}

// Listening is a readiness check: a TCP connection to addr succeeds.
func Listening(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	}
}

var (
	//go:embed nginx.conf.tmpl
	nginxTemplate string
	//go:embed varnish.vcl.tmpl
	varnishTemplate string
)

// nginxCommand writes nginx.conf and runs nginx in the foreground with
// every path inside s.Dir (Debian's build would otherwise write under
// /var/lib/nginx and /var/log/nginx).
func nginxCommand(bin string, s Setup) (Command, error) {
	if err := os.MkdirAll(filepath.Join(s.Dir, "tmp"), 0o755); err != nil {
		return Command{}, err
	}
	data := struct {
		Dir, Listen, Origin, User, Group string
	}{Dir: s.Dir, Listen: s.Listen, Origin: s.Origin}
	if os.Geteuid() == 0 {
		// As root, nginx would run its workers as nobody, who cannot
		// enter the bench's private temporary directory.
		u, err := user.Current()
		if err != nil {
			return Command{}, err
		}
		g, err := user.LookupGroupId(u.Gid)
		if err != nil {
			return Command{}, err
		}
		data.User, data.Group = u.Username, g.Name
	}
	conf := filepath.Join(s.Dir, "nginx.conf")
	if err := render(conf, nginxTemplate, data); err != nil {
		return Command{}, err
	}
	return Command{
		Name: "nginx",
		Path: bin,
		Args: []string{"-p", s.Dir, "-c", conf, "-e", filepath.Join(s.Dir, "error.log")},
		Log:  filepath.Join(s.Dir, "nginx.log"),
	}, nil
}

// varnishCommand writes default.vcl and runs varnishd in the foreground
// with malloc storage and its work directory inside s.Dir. "-j none"
// keeps it as the bench's user, for the same reason as nginx's user line.
func varnishCommand(bin string, s Setup) (Command, error) {
	host, port, err := net.SplitHostPort(s.Origin)
	if err != nil {
		return Command{}, err
	}
	vcl := filepath.Join(s.Dir, "default.vcl")
	if err := render(vcl, varnishTemplate, struct{ OriginHost, OriginPort string }{host, port}); err != nil {
		return Command{}, err
	}
	return Command{
		Name: "varnish",
		Path: bin,
		Args: []string{"-F", "-j", "none", "-n", filepath.Join(s.Dir, "work"), "-f", vcl,
			"-a", s.Listen, "-s", "malloc,256m", "-T", "none"},
		Log: filepath.Join(s.Dir, "varnish.log"),
	}, nil
}

func render(path, tmpl string, data any) error {
	t, err := template.New(filepath.Base(path)).Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return err
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
