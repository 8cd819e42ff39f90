package configs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

func (v *validator) schemaFile(f string, ct *Contract) {
	p := ct.SchemaFile
	if !filepath.IsAbs(p) && v.o.Dir != "" {
		p = filepath.Join(v.o.Dir, p)
	}
	data, err := readLimited(p, MaxSchemaFileBytes)
	if err != nil {
		v.errf("%s: %q: %v", f, ct.SchemaFile, err)
		return
	}
	s, err := CompileSchema(data, "mem://cairn/route-schema.json")
	if err != nil {
		v.errf("%s: %q: %v", f, ct.SchemaFile, err)
		return
	}
	ct.Schema = s
	sum := sha256.Sum256(data)
	ct.SchemaSHA256 = hex.EncodeToString(sum[:])
}

// readLimited reads a regular file of at most limit bytes. Anything else
// (a FIFO or device would block or never end) is refused before opening.
func readLimited(p string, limit int64) ([]byte, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, errors.Unwrap(err)
	}
	if !st.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	fh, err := os.Open(p)
	if err != nil {
		return nil, errors.Unwrap(err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}

// CompileSchema compiles one self-contained JSON Schema document under the
// given absolute ID. Any $ref outside the document is refused with
// ErrExternalRef. It is safe for concurrent use.
func CompileSchema(data []byte, id string) (*jsonschema.Schema, error) {
	var doc any
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(&doc); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if d.More() {
		return nil, errors.New("invalid JSON: trailing data after the schema")
	}
	comp := jsonschema.NewCompiler()
	comp.Draft = jsonschema.Draft2020
	comp.LoadURL = func(u string) (io.ReadCloser, error) {
		return nil, fmt.Errorf("%w: %s", ErrExternalRef, u)
	}
	if err := comp.AddResource(id, bytes.NewReader(data)); err != nil {
		return nil, fmt.Errorf("compile schema: %w", err)
	}
	s, err := comp.Compile(id)
	if err != nil {
		return nil, fmt.Errorf("compile schema: %w", err)
	}
	return s, nil
}
