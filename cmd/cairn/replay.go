package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/incidents"
	"github.com/cairnhq/cairn/schema"
)

const replayUsage = `replay SAMPLES --route R (--admin URL | --gateway URL | --target PROVIDER/MODEL --config F) [--key KEY] [--config F]
  SAMPLES is a JSONL file of capture records (cairn incidents samples ID > f.jsonl)
  or an incident ID read with --admin URL or --data-dir DIR; with --admin alone the
  replay goes through that gateway and its x-cairn-contract verdict judges`

// replayOpts are the parsed flags of `cairn replay`.
type replayOpts struct {
	samples, route, gateway, key, target string
	cfg                                  *configs.Config
	src                                  *source
	timeout                              time.Duration
}

// cmdReplay sends each sample's masked request again, through a gateway
// (as the route's clients do) or straight to one target (to test a fixed
// model or prompt before it gets traffic), and judges every answer with the
// route's contract: the postmortem's first action item (a replay test),
// which passes once the target is fixed. Exit 1 if any sample fails; exit 2
// on usage errors (a missing or invalid config file, an unknown route).
func cmdReplay(args []string, stdout, stderr io.Writer) error {
	o, err := parseReplay(args)
	if err != nil {
		return err
	}
	recs, err := o.loadSamples()
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		return fmt.Errorf("%s holds no samples: nothing to replay", o.samples)
	}
	var route *configs.Route
	if o.cfg != nil {
		route = o.cfg.Route(o.route)
	}
	contracts := schema.NewContracts(64)
	client := &http.Client{Timeout: o.timeout}
	via := o.gateway
	if o.target != "" {
		via = o.target
	}
	judge := "the gateway's verdict (x-cairn-contract)"
	if route != nil {
		judge = fmt.Sprintf("route %s's contract in %s", o.route, o.cfg.Path)
	}
	fmt.Fprintf(stderr, "replaying %d samples to %s; judged by %s\n", len(recs), via, judge)

	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RESULT\tSAMPLE\tREPLAY REQUEST ID\tTARGET\tSTATUS\tDETAILS")
	var passed, failed, skipped int
	for i := range recs {
		r := o.replayOne(client, contracts, route, &recs[i])
		switch r.result {
		case "PASS":
			passed++
		case "SKIP":
			skipped++
		default:
			failed++
		}
		status := "-"
		if r.status != 0 {
			status = fmt.Sprint(r.status)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.result, orDash(recs[i].GatewayRequestID), orDash(r.requestID), orDash(r.target), status, oneLine(r.details))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d samples: %d passed, %d failed, %d skipped\n", len(recs), passed, failed, skipped)
	switch {
	case failed > 0:
		return fmt.Errorf("%d of %d replayed samples fail route %s's contract or got no answer", failed, passed+failed, o.route)
	case passed == 0:
		return fmt.Errorf("no sample had a recorded request to replay")
	}
	return nil
}

func parseReplay(args []string) (*replayOpts, error) {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o := &replayOpts{src: sourceFlags(fs)}
	cfgPath := fs.String("config", "", "config file: the route's contract and prompt, the target's provider")
	fs.StringVar(&o.route, "route", "", "route whose contract judges the answers")
	fs.StringVar(&o.gateway, "gateway", "", "a running gateway's API URL, e.g. http://127.0.0.1:8080 (default: --config's listen address)")
	fs.StringVar(&o.key, "key", os.Getenv("CAIRN_API_KEY"), "gateway key for --gateway (default $CAIRN_API_KEY)")
	fs.StringVar(&o.target, "target", "", "send straight to this provider/model of --config instead of a gateway")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "per request")
	withValue := map[string]bool{"gateway": true, "key": true, "target": true, "timeout": true}
	for k, v := range valueFlags {
		withValue[k] = v
	}
	if err := fs.Parse(flagsAnywhere(args, withValue)); err != nil {
		return nil, usageError{err.Error() + "\n" + replayUsage}
	}
	rest := fs.Args()
	if len(rest) != 1 || o.route == "" {
		return nil, usageError{replayUsage}
	}
	o.samples = rest[0]
	if o.src.dataDir != "" || o.src.admin != "" {
		if err := o.src.check(); err != nil {
			return nil, usageError{err.Error()}
		}
	}
	if o.gateway != "" && o.target != "" {
		return nil, usageError{"give one of --gateway URL and --target PROVIDER/MODEL"}
	}
	if *cfgPath == "" && o.target != "" {
		return nil, usageError{"--target needs --config: the provider's base_url and key come from it"}
	}
	if *cfgPath == "" && o.gateway == "" && o.src.admin != "" {
		// The gateway behind --admin: it routes the replay as it routed
		// the samples, and its x-cairn-contract verdict judges.
		gw, err := o.src.gatewayFromAdmin()
		if err != nil {
			return nil, err
		}
		o.gateway = gw
	}
	if *cfgPath == "" && o.gateway == "" {
		return nil, usageError{"give --admin URL or --gateway URL (the gateway to replay through), or --config F (whose listen address is the gateway), or --target PROVIDER/MODEL --config F"}
	}
	if *cfgPath != "" {
		cfg, err := loadReplayConfig(*cfgPath)
		if err != nil {
			return nil, usageError{err.Error()}
		}
		if cfg.Route(o.route) == nil {
			return nil, usageError{fmt.Sprintf("no route %q in %s", o.route, *cfgPath)}
		}
		o.cfg = cfg
		if o.gateway == "" && o.target == "" {
			if _, port, _ := net.SplitHostPort(cfg.Listen); port == "0" {
				// The kernel chose the port: only the running gateway knows it.
				return nil, usageError{fmt.Sprintf("%s listens on port 0, so it does not say where the gateway is: give --admin URL (its /admin/state names the port) or --gateway URL", *cfgPath)}
			}
			o.gateway = "http://" + dialAddr(cfg.Listen)
		}
	}
	if o.target != "" {
		prov, model, ok := strings.Cut(o.target, "/")
		if !ok || model == "" {
			return nil, usageError{fmt.Sprintf("--target %q is not provider/model", o.target)}
		}
		p := o.cfg.Provider(prov)
		if p == nil {
			return nil, usageError{fmt.Sprintf("--target %q: no provider %q in %s", o.target, prov, *cfgPath)}
		}
		if p.APIKeyEnv != "" {
			if v, ok := os.LookupEnv(p.APIKeyEnv); !ok || v == "" {
				return nil, usageError{fmt.Sprintf("--target %q: environment variable %s (the provider's key) is not set", o.target, p.APIKeyEnv)}
			}
		}
	}
	return o, nil
}

// loadReplayConfig loads the config for its routes and providers. Secrets
// the replay does not use (gateway keys, other providers' keys, the admin
// token) may be unset on the investigator's machine, so an unset variable
// reads as a placeholder; the target's own key is checked by the caller.
func loadReplayConfig(p string) (*configs.Config, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := configs.Load(data, configs.Options{Dir: filepath.Dir(p), LookupEnv: func(k string) (string, bool) {
		if v, ok := os.LookupEnv(k); ok && v != "" {
			return v, true
		}
		return "unset-" + k, true
	}})
	if err != nil {
		return nil, fmt.Errorf("%s is invalid:\n%w", p, err)
	}
	cfg.Path = p
	return cfg, nil
}

// loadSamples reads capture records from the JSONL file, or the during
// samples of an incident when samples is an incident ID and a source is
// given.
func (o *replayOpts) loadSamples() ([]capture.Record, error) {
	if strings.HasPrefix(o.samples, "inc_") && (o.src.dataDir != "" || o.src.admin != "") {
		inc, err := o.src.incident(o.samples)
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if err := incidents.WriteSamplesJSONL(&buf, inc); err != nil {
			return nil, err
		}
		return readRecords(&buf, o.samples)
	}
	f, err := os.Open(o.samples)
	if err != nil {
		return nil, usageError{fmt.Sprintf("read samples: %v", err)}
	}
	defer f.Close()
	return readRecords(f, o.samples)
}

func readRecords(r io.Reader, name string) ([]capture.Record, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var out []capture.Record
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var rec capture.Record
		if err := json.Unmarshal(line, &rec); err != nil {
			return nil, fmt.Errorf("%s line %d: not a capture record: %w", name, n, err)
		}
		out = append(out, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return out, nil
}

type replayResult struct {
	result    string // PASS, FAIL, SKIP
	requestID string
	target    string
	status    int
	details   string
}

// replayBody rebuilds a chat request from a record: its masked messages
// and the parameters the record keeps. It returns notes on what the record
// could not give back.
func replayBody(rec *capture.Record, model string) ([]byte, []string) {
	if len(rec.Request) == 0 || rec.Request[0] != '[' {
		return nil, nil
	}
	body := map[string]any{"model": model, "messages": rec.Request}
	var notes []string
	if rec.Params.Temperature != nil {
		body["temperature"] = *rec.Params.Temperature
	}
	if rec.Params.MaxTokens > 0 {
		body["max_tokens"] = rec.Params.MaxTokens
	}
	switch rec.Params.ResponseFormat {
	case "json_object", "text":
		body["response_format"] = map[string]string{"type": rec.Params.ResponseFormat}
	case "json_schema":
		// The record keeps only the type; the route's own schema still judges.
		body["response_format"] = map[string]string{"type": "json_object"}
		notes = append(notes, "response_format json_schema was recorded without its schema; replayed as json_object")
	}
	if rec.Params.Tools > 0 {
		notes = append(notes, fmt.Sprintf("the %d tools were not recorded; replayed without them", rec.Params.Tools))
	}
	if rec.Params.Stream {
		notes = append(notes, "replayed without streaming")
	}
	b, _ := json.Marshal(body)
	return b, notes
}

func (o *replayOpts) replayOne(client *http.Client, contracts *schema.Contracts, route *configs.Route, rec *capture.Record) replayResult {
	model := o.route
	if o.target != "" {
		_, model, _ = strings.Cut(o.target, "/")
	}
	if rec.Endpoint != "" && rec.Endpoint != "chat.completions" {
		return replayResult{result: "SKIP", details: "a " + rec.Endpoint + " request; replay sends chat completions"}
	}
	body, notes := replayBody(rec, model)
	if body == nil {
		return replayResult{result: "SKIP", details: "the record kept no request body (body_sample_rate)"}
	}
	var (
		url string
		hdr = http.Header{"Content-Type": {"application/json"}}
		res = replayResult{target: o.target}
	)
	if o.target != "" {
		prov, _, _ := strings.Cut(o.target, "/")
		p := o.cfg.Provider(prov)
		rewritten, err := schema.RewriteRequest(nil, body, "", route.Prompt.System, false)
		if err != nil {
			return replayResult{result: "FAIL", target: o.target, details: "rewrite request: " + err.Error()}
		}
		body = rewritten
		url = strings.TrimSuffix(p.BaseURL, "/") + "/chat/completions"
		if p.APIKeyEnv != "" {
			hdr.Set("Authorization", "Bearer "+os.Getenv(p.APIKeyEnv))
		}
		for k, v := range p.Headers {
			hdr.Set(k, v)
		}
	} else {
		url = strings.TrimSuffix(strings.TrimSuffix(o.gateway, "/"), "/v1") + "/v1/chat/completions"
		if o.key != "" {
			hdr.Set("Authorization", "Bearer "+o.key)
		}
		hdr.Set("X-Client-Request-Id", "replay-"+rec.GatewayRequestID)
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return replayResult{result: "FAIL", target: o.target, details: err.Error()}
	}
	req.Header = hdr
	resp, err := client.Do(req)
	if err != nil {
		if u := errors.Unwrap(err); u != nil {
			err = u // drop the method and URL: the table names the target
		}
		res.result, res.details = "FAIL", "no answer: "+err.Error()
		return res
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	res.status = resp.StatusCode
	res.requestID = resp.Header.Get("x-request-id")
	if t := resp.Header.Get("x-cairn-target"); t != "" {
		res.target = t
	}
	if err != nil {
		res.result, res.details = "FAIL", "read answer: "+err.Error()
		return res
	}
	if resp.StatusCode != http.StatusOK {
		msg := errorMessage(respBody)
		res.result, res.details = "FAIL", fmt.Sprintf("status %d: %s", resp.StatusCode, msg)
		return res
	}
	res.result = "PASS"
	var reasons []string
	if route != nil {
		preq, err := schema.ParseChatRequest(body)
		if err != nil {
			res.result, res.details = "FAIL", "replayed request: "+err.Error()
			return res
		}
		ct, err := contracts.Prepare(route.Contract.Schema, &preq)
		if err != nil {
			res.result, res.details = "FAIL", "contract: "+err.Error()
			return res
		}
		v := ct.CheckMessage(respBody)
		if v.Result == "fail" {
			res.result = "FAIL"
		}
		reasons = append(reasons, "contract "+v.Result)
		reasons = append(reasons, v.Reasons...)
	} else {
		v := resp.Header.Get("x-cairn-contract")
		if v == "fail" {
			res.result = "FAIL"
		}
		reasons = append(reasons, "gateway contract verdict "+orDash(v))
		if v == "fail" && res.requestID != "" {
			reasons = append(reasons, "reasons: cairn requests show "+res.requestID)
		}
	}
	res.details = strings.Join(append(reasons, notes...), "; ")
	return res
}

// errorMessage returns error.message of an OpenAI-shaped error body,
// else the body's start.
func errorMessage(b []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
		return e.Error.Message
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

// dialAddr turns a listen address into one to dial: a wildcard or empty
// host (":8080", "0.0.0.0:8080", "[::]:8080") becomes loopback.
func dialAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
