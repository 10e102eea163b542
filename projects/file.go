package projects

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"

	"go.yaml.in/yaml/v3"
)

// fileFormat is the projects file: a list of projects under "projects".
type fileFormat struct {
	Projects []Project `yaml:"projects"`
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// LoadFile reads a projects file (YAML; docs/projects.md), substitutes
// ${VAR} in its string values from the environment, normalizes and
// validates every project. Refs must be unique.
func LoadFile(path string) ([]Project, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read projects file: %w", err)
	}
	return Parse(data, os.LookupEnv)
}

// Parse decodes a projects document; lookup resolves ${VAR} references.
func Parse(data []byte, lookup func(string) (string, bool)) ([]Project, error) {
	var f fileFormat
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse projects file: %w", err)
	}
	seen := map[string]bool{}
	for i := range f.Projects {
		p := &f.Projects[i]
		for _, s := range []*string{&p.Ref, &p.DBURL, &p.Source, &p.Slot, &p.Publication, &p.JWTSecret, &p.JWTJWKS} {
			v, err := expand(*s, lookup)
			if err != nil {
				return nil, fmt.Errorf("projects file: project %d (%s): %w", i+1, p.Ref, err)
			}
			*s = v
		}
		p.Normalize()
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("projects file: project %d (%s): %w", i+1, p.Ref, err)
		}
		if seen[p.Ref] {
			return nil, fmt.Errorf("projects file: project ref %q appears twice", p.Ref)
		}
		seen[p.Ref] = true
	}
	return f.Projects, nil
}

// expand replaces every ${VAR} in s; an unset variable is an error so a
// missing secret never becomes an empty one.
func expand(s string, lookup func(string) (string, bool)) (string, error) {
	var missing []string
	out := envRef.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		v, ok := lookup(name)
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("environment variable %s is not set", missing[0])
	}
	return out, nil
}
