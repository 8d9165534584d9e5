package configs

import (
	"embed"
	"fmt"
	"io/fs"
)

// examples are the example configs, built into the binary so that
// `sheepdog -demo` finds them from any working directory.
//
//go:embed sheepdog.yaml minimal.yaml
var examples embed.FS

// ExampleNames lists the embedded example files: "minimal.yaml", the
// smallest useful config, and "sheepdog.yaml", every route of the app.
func ExampleNames() []string {
	names, _ := fs.Glob(examples, "*.yaml")
	return names
}

// ExampleFile returns an embedded example file by name, for Parse or
// ParseWithEnv.
func ExampleFile(name string) ([]byte, error) {
	data, err := examples.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("example config %q: want one of %v", name, ExampleNames())
	}
	return data, nil
}
