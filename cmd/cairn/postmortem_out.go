package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/incidents"
)

// writePostmortemOut writes `cairn incidents postmortem ID --out DIR`
// (issue 18): DIR/ID.md, the Markdown draft that embeds the chart, and
// DIR/ID.svg, the chart the console shows. With --data-dir the chart is
// drawn from the capture files there; with --admin it is the gateway's.
func writePostmortemOut(src *source, inc *incidents.Incident, dir string, stdout io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--out %s: %w", dir, err)
	}
	var svg []byte
	if src.dataDir != "" {
		ch := incidents.NewChart(inc, time.Now())
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := capture.BetweenInDir(ctx, src.dataDir, ch.Period(), ch.Add); err != nil {
			return fmt.Errorf("chart of %s: %w", inc.ID, err)
		}
		var b bytes.Buffer
		if err := ch.WriteSVG(&b); err != nil {
			return err
		}
		svg = b.Bytes()
	} else {
		var err error
		if svg, err = src.get("/admin/incidents/" + inc.ID + "/chart.svg"); err != nil {
			return fmt.Errorf("chart of %s: %w", inc.ID, err)
		}
	}
	svgName, mdName := inc.ID+".svg", inc.ID+".md"
	if err := writeFileAtomic(filepath.Join(dir, svgName), svg); err != nil {
		return err
	}
	md := incidents.RenderPostmortemWith(inc, incidents.PostmortemOptions{ChartFile: svgName})
	if err := writeFileAtomic(filepath.Join(dir, mdName), []byte(md)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n%s\n", filepath.Join(dir, mdName), filepath.Join(dir, svgName))
	return nil
}

// writeFileAtomic writes b to path through a temporary file and a rename.
func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
