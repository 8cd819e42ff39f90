package main

import (
	"context"
	"errors"
	"os"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// jsonFileConfig is the jsonfile exporter's config: the file the trace
// batches are appended to.
type jsonFileConfig struct {
	Path string `mapstructure:"path"`
}

// Validate refuses a config without a path.
func (c *jsonFileConfig) Validate() error {
	if c.Path == "" {
		return errors.New("path: required")
	}
	return nil
}

func newJSONFileFactory() exporter.Factory {
	return exporter.NewFactory(
		component.MustNewType("jsonfile"),
		func() component.Config { return &jsonFileConfig{} },
		exporter.WithTraces(createTraces, component.StabilityLevelDevelopment),
	)
}

// jsonFile appends each batch as one line of OTLP JSON and syncs it, so a
// reader that sees the line sees all of it.
type jsonFile struct {
	path string
	mu   sync.Mutex
	f    *os.File
	m    ptrace.JSONMarshaler
}

func createTraces(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Traces, error) {
	j := &jsonFile{path: cfg.(*jsonFileConfig).Path}
	return exporterhelper.NewTraces(ctx, set, cfg, j.push,
		exporterhelper.WithStart(j.start), exporterhelper.WithShutdown(j.shutdown))
}

func (j *jsonFile) start(context.Context, component.Host) error {
	f, err := os.OpenFile(j.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	j.f = f
	return nil
}

func (j *jsonFile) push(_ context.Context, td ptrace.Traces) error {
	b, err := j.m.MarshalTraces(td)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := j.f.Write(append(b, '\n')); err != nil {
		return err
	}
	return j.f.Sync()
}

func (j *jsonFile) shutdown(context.Context) error {
	if j.f == nil {
		return nil
	}
	return j.f.Close()
}
