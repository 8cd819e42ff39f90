package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cairnhq/cairn/capture"
	"github.com/cairnhq/cairn/configs"
	"github.com/cairnhq/cairn/incidents"
	"github.com/cairnhq/cairn/schema"
)

// source is where the investigator's commands read from: a data directory
// (offline, works while the gateway is down) or a running gateway's admin
// API.
type source struct {
	dataDir string
	admin   string
	token   string
}

func sourceFlags(fs *flag.FlagSet) *source {
	s := &source{}
	fs.StringVar(&s.dataDir, "data-dir", "", "read from this data directory")
	fs.StringVar(&s.admin, "admin", "", "read from a running gateway's admin URL, e.g. http://127.0.0.1:8081")
	fs.StringVar(&s.token, "admin-token", os.Getenv("CAIRN_ADMIN_TOKEN"), "admin bearer token (default $CAIRN_ADMIN_TOKEN)")
	return s
}

func (s *source) check() error {
	if (s.dataDir == "") == (s.admin == "") {
		return usageError{"give exactly one of --data-dir DIR and --admin URL"}
	}
	if s.dataDir != "" {
		// A mistyped path must not read as "no incidents".
		st, err := os.Stat(s.dataDir)
		switch {
		case err != nil:
			return fmt.Errorf("--data-dir %s: %w", s.dataDir, errors.Unwrap(err))
		case !st.IsDir():
			return fmt.Errorf("--data-dir %s: not a directory", s.dataDir)
		}
	}
	return nil
}

func (s *source) get(path string) ([]byte, error) {
	req, err := http.NewRequest(http.MethodGet, strings.TrimSuffix(s.admin, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}

func (s *source) incident(id string) (*incidents.Incident, error) {
	if s.dataDir != "" {
		return incidents.LoadIncident(s.dataDir, id)
	}
	b, err := s.get("/admin/incidents/" + id)
	if err != nil {
		return nil, err
	}
	var inc incidents.Incident
	if err := json.Unmarshal(b, &inc); err != nil {
		return nil, fmt.Errorf("decode incident: %w", err)
	}
	return &inc, nil
}

var valueFlags = map[string]bool{"data-dir": true, "admin": true, "admin-token": true, "config": true, "route": true, "out": true}

// cmdIncidents writes machine-readable output (JSON, JSONL, tables,
// Markdown) to stdout and notes for a human (hash verification) to stderr,
// so `cairn incidents show ID | jq` works.
func cmdIncidents(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("incidents", flag.ContinueOnError)
	src := sourceFlags(fs)
	out := fs.String("out", "", "postmortem: write ID.md and the chart ID.svg into this directory")
	if err := fs.Parse(flagsAnywhere(args, valueFlags)); err != nil {
		return usageError{err.Error()}
	}
	if err := src.check(); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return usageError{"incidents list|show ID|postmortem ID [--out DIR]|samples ID"}
	}
	verb := rest[0]
	if *out != "" && verb != "postmortem" {
		return usageError{"--out goes with incidents postmortem ID"}
	}
	if verb != "list" && len(rest) != 2 {
		return usageError{fmt.Sprintf("incidents %s needs an incident ID", verb)}
	}
	switch verb {
	case "list":
		var list []incidents.Summary
		if src.dataDir != "" {
			incs, err := incidents.LoadDir(src.dataDir)
			if err != nil {
				return err
			}
			for _, i := range incs {
				list = append(list, i.Summary())
			}
		} else {
			b, err := src.get("/admin/incidents")
			if err != nil {
				return err
			}
			if err := json.Unmarshal(b, &list); err != nil {
				return fmt.Errorf("decode incidents: %w", err)
			}
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATUS\tSEVERITY\tOPENED (UTC)\tROUTE\tSIGNAL\tSYMPTOM")
		for _, s := range list {
			status := s.Status
			if s.Resolution == incidents.ResolutionNoTraffic {
				status += " (no traffic, not mitigated)"
			}
			sev := string(s.Severity)
			if sev == "" {
				sev = "page" // incidents from before severities
			}
			if s.Class != "" {
				sev += " (" + s.Class + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, status, sev, s.OpenedAt.UTC().Format(time.RFC3339), s.Route, s.Signal, s.Symptom)
		}
		return tw.Flush()
	case "show":
		inc, err := src.incident(rest[1])
		if err != nil {
			return err
		}
		verr := inc.Verify()
		b, _ := json.MarshalIndent(inc, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
		if verr != nil {
			return fmt.Errorf("incident %s FAILED verification: %w", inc.ID, verr)
		}
		fmt.Fprintf(stderr, "frozen hash verified: %s\n", inc.FrozenHash)
		return nil
	case "postmortem":
		inc, err := src.incident(rest[1])
		if err != nil {
			return err
		}
		if *out != "" {
			return writePostmortemOut(src, inc, *out, stdout)
		}
		fmt.Fprint(stdout, incidents.RenderPostmortem(inc))
		return nil
	case "samples":
		inc, err := src.incident(rest[1])
		if err != nil {
			return err
		}
		return incidents.WriteSamplesJSONL(stdout, inc)
	}
	return usageError{fmt.Sprintf("unknown verb %q", verb)}
}

func cmdRequests(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("requests", flag.ContinueOnError)
	src := sourceFlags(fs)
	if err := fs.Parse(flagsAnywhere(args, valueFlags)); err != nil {
		return usageError{err.Error()}
	}
	if err := src.check(); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) != 2 || rest[0] != "show" {
		return usageError{"requests show ID"}
	}
	var b []byte
	if src.dataDir != "" {
		m, err := capture.FindAllInDir(src.dataDir, rest[1])
		if err != nil {
			return err
		}
		b, _ = json.MarshalIndent(m.Body(), "", "  ")
	} else {
		var err error
		if b, err = src.get("/admin/requests/" + rest[1]); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "%s\n", bytes.TrimSpace(b))
	return nil
}

// cmdContract checks fixtures (capture records as JSONL, e.g. from
// `cairn incidents samples`) against a route's contract: the action item
// "add a contract test" becomes one command in CI. Exit 1 if any fails.
func cmdContract(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("contract", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file")
	route := fs.String("route", "", "route whose contract to apply")
	if err := fs.Parse(flagsAnywhere(args, valueFlags)); err != nil {
		return usageError{err.Error()}
	}
	rest := fs.Args()
	if len(rest) != 2 || rest[0] != "test" || *cfgPath == "" || *route == "" {
		return usageError{"contract test FILE --config F --route R"}
	}
	// A missing or invalid config, an unknown route or a missing fixtures
	// file is a usage error (exit 2), not a failed test (exit 1).
	cfg, err := loadReplayConfig(*cfgPath)
	if err != nil {
		return usageError{err.Error()}
	}
	r := cfg.Route(*route)
	if r == nil {
		return usageError{fmt.Sprintf("no route %q in %s", *route, *cfgPath)}
	}
	f, err := os.Open(rest[1])
	if err != nil {
		return usageError{fmt.Sprintf("read fixtures: %v", err)}
	}
	defer f.Close()
	contracts := schema.NewContracts(64)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	n, failed := 0, 0
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var rec capture.Record
		if err := json.Unmarshal(line, &rec); err != nil {
			return fmt.Errorf("%s line %d: %w", rest[1], n+1, err)
		}
		n++
		v, err := checkFixture(contracts, r, &rec)
		if err != nil {
			return fmt.Errorf("%s line %d: %w", rest[1], n, err)
		}
		mark := "PASS"
		if v.Result == "fail" {
			mark = "FAIL"
			failed++
		}
		fmt.Fprintf(stdout, "%s %s %s\n", mark, rec.GatewayRequestID, strings.Join(v.Reasons, "; "))
	}
	if err := sc.Err(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", n-failed, failed)
	if failed > 0 {
		return fmt.Errorf("%d of %d fixtures break route %s's contract", failed, n, *route)
	}
	return nil
}

// checkFixture rebuilds a chat.completion body from a record's masked
// response and judges it with the route's contract (plus the record's own
// request constraints when its request was kept).
func checkFixture(c *schema.Contracts, r *configs.Route, rec *capture.Record) (schema.Verdict, error) {
	var resp struct {
		Content   *string         `json:"content"`
		ToolCalls json.RawMessage `json:"tool_calls"`
	}
	if len(rec.Response) > 0 {
		_ = json.Unmarshal(rec.Response, &resp)
	}
	msg := map[string]any{"role": "assistant", "content": resp.Content}
	if len(resp.ToolCalls) > 0 && string(resp.ToolCalls) != "null" {
		var tcs []map[string]any
		if err := json.Unmarshal(resp.ToolCalls, &tcs); err == nil {
			var out []map[string]any
			for i, tc := range tcs {
				name, _ := tc["name"].(string)
				args, _ := tc["arguments"].(string)
				if fn, ok := tc["function"].(map[string]any); ok {
					name, _ = fn["name"].(string)
					args, _ = fn["arguments"].(string)
				}
				out = append(out, map[string]any{"index": i, "id": tc["id"], "type": "function",
					"function": map[string]any{"name": name, "arguments": args}})
			}
			msg["tool_calls"] = out
		}
	}
	body, _ := json.Marshal(map[string]any{"object": "chat.completion",
		"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": "stop"}}})
	req := schema.Request{}
	contract, err := c.Prepare(r.Contract.Schema, &req)
	if err != nil {
		return schema.Verdict{}, err
	}
	return contract.CheckMessage(body), nil
}
