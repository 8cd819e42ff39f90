package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/cairnhq/cairn/internal/readyfile"
	"github.com/cairnhq/cairn/loadtest"
)

// cmdLoadtest runs one benchmark or drill scenario on loopback and prints
// its table; --json and --svg write the figures and the chart.
func cmdLoadtest(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	jsonOut := fs.String("json", "", "write the figures as JSON to FILE")
	svgOut := fs.String("svg", "", "write the chart as SVG to FILE")
	quick := fs.Bool("quick", false, "smoke profile: seconds, small counts")
	seconds := fs.Int("seconds", 0, "override each measured phase's length")
	rate := fs.Float64("rate", 0, "override the fixed open-loop rate (requests/s)")
	streams := fs.Int("streams", 0, "override the number of concurrent streams")
	workDir := fs.String("work-dir", "", "keep configs, data and child logs here")
	drill := fs.String("scenario", "", "drill: "+strings.Join(loadtest.DrillScenarios(), " or ")+" (default canary)")
	replicas := fs.Int("replicas", 0, "drill --scenario prompt-revert: cairn serve processes sharing one Redis and the load")
	keys := fs.Int("keys", 0, "overhead: pad the gateway config to N keys")
	routes := fs.Int("routes", 0, "overhead: pad the gateway config to N glob routes")
	bodySize := fs.Bool("body-size", false, "overhead: measure CPU per KB at 1 KB, 64 KB and 1 MB requests and 256 KB responses (Cairn vs the bare fasthttp hop)")
	drillSignal, checkSignal := drillSignalFlag(fs)
	if err := fs.Parse(flagsAnywhere(args, loadtestValueFlags)); err != nil {
		return usageError{err.Error()}
	}
	if err := checkSignal(); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"loadtest SCENARIO; scenarios: " + strings.Join(loadtest.Scenarios(), ", ")}
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := loadtest.Run(ctx, fs.Arg(0), loadtest.Options{
		Binary: bin, Out: stderr, Quick: *quick, WorkDir: *workDir, Seconds: *seconds, Rate: *rate, Streams: *streams,
		Drill: *drill, Replicas: *replicas,
		Keys: *keys, Routes: *routes,
		BodySize: *bodySize,
		Signal:   *drillSignal,
	})
	if rep != nil {
		if werr := rep.WriteTable(stdout); werr != nil {
			return werr
		}
		if *jsonOut != "" {
			if werr := writeFile(*jsonOut, rep.WriteJSON); werr != nil {
				return werr
			}
		}
		if *svgOut != "" {
			if werr := writeFile(*svgOut, rep.WriteSVG); werr != nil {
				return werr
			}
		}
	}
	return err
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// cmdReference runs the stdlib httputil.ReverseProxy the benchmarks compare
// against (hidden: only loadtest starts it).
func cmdReference(args []string) error {
	return cmdComparisonProxy("loadtest-reference", args, loadtest.RunReference)
}

// cmdHop runs the bare fasthttp hop the overhead scenario measures Cairn
// against (hidden: only loadtest starts it).
func cmdHop(args []string) error {
	return cmdComparisonProxy("loadtest-hop", args, loadtest.RunHop)
}

// cmdComparisonProxy parses --listen and --upstream and runs one of the
// proxies the benchmarks compare Cairn against until SIGTERM or SIGINT.
func cmdComparisonProxy(name string, args []string, run func(ln net.Listener, upstream string, stop <-chan struct{}) error) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	addr := fs.String("listen", "127.0.0.1:0", "address")
	upstream := fs.String("upstream", "", "upstream base URL")
	readyFile := fs.String("ready-file", "", `once the port is bound, write {"pid":N,"listen":"ADDR"} here`)
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", *addr, err)
	}
	if *readyFile != "" {
		if err := readyfile.Write(*readyFile, readyfile.Addrs{PID: os.Getpid(), Listen: ln.Addr().String()}); err != nil {
			ln.Close()
			return err
		}
		defer os.Remove(*readyFile)
	}
	stopc := make(chan struct{})
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sigs; close(stopc) }()
	return run(ln, *upstream, stopc)
}

// loadtestValueFlags are the loadtest flags that take a value (bool flags
// such as --body-size and --quick do not).
var loadtestValueFlags = map[string]bool{"json": true, "svg": true, "seconds": true, "rate": true, "streams": true, "work-dir": true,
	"scenario": true, "replicas": true, "keys": true, "routes": true, "signal": true}
