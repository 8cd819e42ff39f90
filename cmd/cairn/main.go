// Command cairn is the Cairn gateway: serve, check a config, explore
// incidents and captured requests, run the demo, the mock provider and the
// load scenarios.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/internal/readyfile"
	"github.com/cairnhq/cairn/loadtest"
	"github.com/cairnhq/cairn/proxy"
	"github.com/cairnhq/cairn/routing/ratelimit"
)

const usage = `cairn — an OpenAI-compatible LLM gateway that keeps the evidence

usage:
  cairn serve --config FILE [--ready-file PATH]
                                            run the gateway (PATH: the bound addresses, as JSON)
  cairn check --config FILE                 validate a config and exit
  cairn demo [--data-dir DIR] [--serve]     the whole story in one command
  cairn incidents list|show ID|postmortem ID [--out DIR]|samples ID  (--data-dir DIR | --admin URL)
  cairn requests show ID                    (--data-dir DIR | --admin URL)
  cairn routes list|prompts ROUTE|revert ROUTE [--to V]|restore ROUTE [--what W] [--cohort C]|rollback ROUTE
                                            live routes, overrides and prompt versions (--admin URL)
  cairn contract test FILE --config F --route R   judge recorded answers
  cairn replay FILE|INCIDENT_ID --route R (--gateway URL | --target PROVIDER/MODEL) [--config F]
                                            send the samples again and judge the new answers
  cairn users hash VALUE --data-dir DIR    the keyed hash recorded for a user value
  cairn mock-provider --listen ADDR         an OpenAI-compatible fake upstream
  cairn loadtest SCENARIO [--json FILE] [--svg FILE]
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = cmdServe(args[1:], stderr)
	case "check":
		err = cmdCheck(args[1:], stdout)
	case "demo":
		err = cmdDemo(args[1:], stdout, stderr)
	case "incidents":
		err = cmdIncidents(args[1:], stdout, stderr)
	case "requests":
		err = cmdRequests(args[1:], stdout)
	case "routes":
		err = cmdRoutes(args[1:], stdout)
	case "contract":
		err = cmdContract(args[1:], stdout)
	case "replay":
		err = cmdReplay(args[1:], stdout, stderr)
	case "users":
		err = cmdUsers(args[1:], stdout)
	case "mock-provider":
		err = cmdMock(args[1:], stderr)
	case "loadtest":
		err = cmdLoadtest(args[1:], stdout, stderr)
	case "loadtest-reference":
		err = cmdReference(args[1:])
	case "loadtest-hop":
		err = cmdHop(args[1:])
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "cairn: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "cairn %s: %v\n", args[0], err)
			return 2
		}
		fmt.Fprintf(stderr, "cairn %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func newLogger(w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if os.Getenv("CAIRN_LOG_LEVEL") == "debug" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

func cmdCheck(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	path := fs.String("config", "", "config file")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if *path == "" {
		return usageError{"--config is required"}
	}
	cfg, err := configs.LoadFile(*path)
	if err != nil {
		return fmt.Errorf("%s is invalid:\n%w", *path, err)
	}
	fmt.Fprintf(stdout, "ok: %s revision %s: %d providers, %d keys, %d routes, release %q\n",
		*path, cfg.Revision, len(cfg.Providers), len(cfg.Keys), len(cfg.Routes), cfg.Release)
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	return nil
}

func cmdServe(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	path := fs.String("config", "", "config file")
	readyFile := fs.String("ready-file", "", "once both listeners are bound, write their addresses here as JSON "+
		`({"pid":N,"listen":"127.0.0.1:41234","admin_listen":"127.0.0.1:41235"}); with listen/admin_listen port 0 it tells a supervisor or test the ports the kernel chose`)
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if *path == "" {
		return usageError{"--config is required"}
	}
	log := newLogger(stderr)
	cfg, err := configs.LoadFile(*path)
	if err != nil {
		return fmt.Errorf("%s is invalid:\n%w", *path, err)
	}
	for _, w := range cfg.Warnings() {
		log.Warn("config warning: " + w)
	}
	return serve(cfg, log, *readyFile, nil)
}

// serve runs a gateway until SIGTERM/SIGINT (drain, flush, exit 0) or
// stop is closed; SIGHUP reloads the config file. With readyFile set, the
// bound addresses are written there once both listeners are open (see
// internal/readyfile) and the file is removed on return.
func serve(cfg *configs.Config, log *slog.Logger, readyFile string, stop <-chan struct{}) error {
	// go-redis logs every failed dial; while Redis is down that is a line
	// per request. Forward its messages at most once per 10 s.
	redis.SetLogger(ratelimit.NewClientLogger(log, 10*time.Second))
	setMemoryLimit(cfg, log)
	// Bind first: a port clash (a supervisor or test retrying on "address
	// already in use") exits before the gateway touches data_dir or Redis.
	api, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	admin, err := net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		api.Close()
		return fmt.Errorf("admin listen %s: %w", cfg.AdminListen, err)
	}
	g, err := proxy.New(proxy.Options{Config: cfg, Logger: log})
	if err != nil {
		api.Close()
		admin.Close()
		return err
	}
	// From here on, go-redis's messages too go through the gateway's
	// logger, which replaces its secrets (the Redis password among them).
	redis.SetLogger(ratelimit.NewClientLogger(g.Logger(), 10*time.Second))
	if readyFile != "" {
		// Written before Serve: the listeners queue connections from now
		// on, and /readyz says when the gateway answers them.
		err := readyfile.Write(readyFile, readyfile.Addrs{PID: os.Getpid(), Listen: api.Addr().String(), AdminListen: admin.Addr().String()})
		if err != nil {
			api.Close()
			admin.Close()
			return err
		}
		defer os.Remove(readyFile)
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(api, admin) }()
	for {
		select {
		case err := <-errc:
			if err != nil {
				return err
			}
			return nil
		case <-stop:
			return g.Shutdown(context.Background())
		case s := <-sigs:
			if s == syscall.SIGHUP {
				_, _, _ = g.Reload("sighup")
				continue
			}
			log.Info("signal received; shutting down", "signal", s.String())
			err := g.Shutdown(context.Background())
			<-errc
			return err
		}
	}
}

func cmdMock(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("mock-provider", flag.ContinueOnError)
	addr := fs.String("listen", "127.0.0.1:18090", "address to listen on")
	latency := fs.Duration("latency", 0, "delay before each response")
	chunkEvery := fs.Duration("chunk-interval", 0, "delay between stream chunks")
	prefix := fs.String("request-id-prefix", "", "prefix of the mock's x-request-id (default mock-XXXXXX, random per process so two mocks never hand out the same ID)")
	chunks := fs.Int("chunks", 0, "content chunks per stream (default 8)")
	replyBytes := fs.Int("json-reply-bytes", 0, "pad the json_object reply's answer to about this many bytes (default: a short answer)")
	apiKey := fs.String("api-key", "", "require this provider key (Authorization: Bearer, Azure's api-key, Anthropic's x-api-key); default: any key passes")
	readyFile := fs.String("ready-file", "", `once the port is bound, write {"pid":N,"listen":"ADDR"} here (for --listen 127.0.0.1:0)`)
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	// Bind first: "listening" is printed only once the port is ours, and a
	// port clash is an error (exit 1), not a line followed by silence.
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
	stop := make(chan struct{})
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	go func() { <-sigs; close(stop) }()
	m := loadtest.NewMock(loadtest.MockOptions{Latency: *latency, ChunkInterval: *chunkEvery, Chunks: *chunks, RequestIDPrefix: *prefix, APIKey: *apiKey,
		JSONContent: loadtest.PaddedJSONContent(*replyBytes)})
	fmt.Fprintf(stderr, "mock provider listening on http://%s/v1 (request IDs %s-N)\n", ln.Addr(), m.RequestIDPrefix())
	errc := make(chan error, 1)
	go func() { errc <- m.Serve(ln) }()
	select {
	case <-stop:
		return m.Close()
	case err := <-errc:
		m.Close()
		return err
	}
}

// flagsAnywhere lets flags follow positional arguments
// ("show ID --data-dir DIR") by moving them first.
func flagsAnywhere(args []string, withValue map[string]bool) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if withValue[name] && !strings.Contains(a, "=") && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		pos = append(pos, a)
	}
	return append(flags, pos...)
}
