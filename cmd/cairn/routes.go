package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cairnhq/cairn/configs"
)

const routesUsage = "routes list | prompts ROUTE | revert ROUTE [--to V] | restore ROUTE [--what cohort|prompt] [--cohort C] | rollback ROUTE [--cohort C]  (--admin URL) [--reason TEXT] [--json]"

var routesValueFlags = map[string]bool{"admin": true, "admin-token": true, "to": true, "what": true, "cohort": true, "reason": true, "incident": true}

// cmdRoutes shows and changes the live routes of a running gateway through
// its admin API: the overrides in force, the prompt registry, prompt
// reverts, rollbacks and restores (issue 17). Mitigations are sent with
// the operator's user name ($USER) as the actor.
func cmdRoutes(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("routes", flag.ContinueOnError)
	admin := fs.String("admin", "", "a running gateway's admin URL, e.g. http://127.0.0.1:8081")
	token := fs.String("admin-token", os.Getenv("CAIRN_ADMIN_TOKEN"), "admin bearer token (default $CAIRN_ADMIN_TOKEN)")
	to := fs.String("to", "", "revert: the prompt version to serve (default: the one served before the live one)")
	what := fs.String("what", "", `restore: the override to clear, "cohort" or "prompt"`)
	cohort := fs.String("cohort", "", "rollback, restore: the cohort")
	reason := fs.String("reason", "", "why (recorded in the override and the audit log)")
	incident := fs.String("incident", "", "the incident the mitigation answers")
	asJSON := fs.Bool("json", false, "print the admin API's JSON")
	if err := fs.Parse(flagsAnywhere(args, routesValueFlags)); err != nil {
		return usageError{err.Error()}
	}
	rest := fs.Args()
	if *admin == "" || len(rest) == 0 {
		return usageError{routesUsage}
	}
	verb := rest[0]
	if verb != "list" && len(rest) != 2 {
		return usageError{fmt.Sprintf("routes %s needs a route name", verb)}
	}
	c := adminClient{base: strings.TrimSuffix(*admin, "/"), token: *token}
	actor := os.Getenv("USER")
	body := func(m map[string]string) string {
		m["reason"], m["actor"], m["incident"] = *reason, actor, *incident
		for k, v := range m {
			if v == "" {
				delete(m, k)
			}
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	var b []byte
	var err error
	switch verb {
	case "list":
		b, err = c.do(http.MethodGet, "/admin/routes", "")
	case "prompts":
		b, err = c.do(http.MethodGet, "/admin/routes/"+rest[1]+"/prompts", "")
	case "revert":
		b, err = c.do(http.MethodPost, "/admin/routes/"+rest[1]+"/prompt/revert", body(map[string]string{"to": *to}))
	case "restore":
		b, err = c.do(http.MethodPost, "/admin/routes/"+rest[1]+"/restore", body(map[string]string{"what": *what, "cohort": *cohort}))
	case "rollback":
		b, err = c.do(http.MethodPost, "/admin/routes/"+rest[1]+"/rollback", body(map[string]string{"cohort": *cohort}))
	default:
		return usageError{routesUsage}
	}
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := stdout.Write(b)
		return err
	}
	switch verb {
	case "list":
		return printRoutes(stdout, b)
	case "prompts":
		return printPrompts(stdout, b)
	case "revert":
		var out struct{ Route, From, To string }
		if err := json.Unmarshal(b, &out); err != nil {
			return fmt.Errorf("decode answer: %w", err)
		}
		fmt.Fprintf(stdout, "route %s now serves prompt %s (was %s); `cairn routes restore %s --what prompt` serves the configured one again\n", out.Route, out.To, out.From, out.Route)
	case "restore":
		var out struct {
			Route   string
			Cleared configs.Override
		}
		if err := json.Unmarshal(b, &out); err != nil {
			return fmt.Errorf("decode answer: %w", err)
		}
		fmt.Fprintf(stdout, "route %s: cleared the override %s (%s); the configured value holds again\n", out.Route, out.Cleared.Key(), out.Cleared.Source)
	case "rollback":
		var out struct{ Route, Cohort string }
		if err := json.Unmarshal(b, &out); err != nil {
			return fmt.Errorf("decode answer: %w", err)
		}
		fmt.Fprintf(stdout, "route %s: cohort %s rolled back (weight 0) on every replica\n", out.Route, out.Cohort)
	}
	return nil
}

type adminClient struct{ base, token string }

func (c adminClient) do(method, path, body string) ([]byte, error) {
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
			return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, e.Error.Message)
		}
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}

func printRoutes(w io.Writer, b []byte) error {
	var rs []struct {
		Name             string             `json:"name"`
		Prompt           configs.Prompt     `json:"prompt"`
		ConfiguredPrompt *configs.Prompt    `json:"configured_prompt"`
		Cohorts          []string           `json:"live_cohorts"`
		RolledBack       []string           `json:"rolled_back"`
		Overrides        []configs.Override `json:"overrides"`
		Unapplied        []configs.Override `json:"unapplied_overrides"`
	}
	if err := json.Unmarshal(b, &rs); err != nil {
		return fmt.Errorf("decode routes: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tPROMPT\tLIVE COHORTS\tROLLED BACK\tOVERRIDES")
	for _, r := range rs {
		prompt := dash(r.Prompt.Version)
		if r.ConfiguredPrompt != nil {
			prompt += " (configured " + dash(r.ConfiguredPrompt.Version) + ")"
		}
		var ovs []string
		for _, o := range r.Overrides {
			s := o.Key() + " by " + dash(o.Actor) + " at " + o.At.UTC().Format(time.RFC3339)
			if o.Incident != "" {
				s += " for " + o.Incident
			}
			ovs = append(ovs, s)
		}
		for _, o := range r.Unapplied {
			ovs = append(ovs, o.Key()+" (not applied: this replica's config differs)")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, prompt, dash(strings.Join(r.Cohorts, ",")), dash(strings.Join(r.RolledBack, ",")), dash(strings.Join(ovs, "; ")))
	}
	return tw.Flush()
}

func printPrompts(w io.Writer, b []byte) error {
	var out struct {
		Route    string `json:"route"`
		Versions []struct {
			Version   string    `json:"version"`
			SHA256    string    `json:"sha256"`
			FirstSeen time.Time `json:"first_seen"`
			LastSeen  time.Time `json:"last_seen"`
			Revision  string    `json:"config_revision"`
			Live      bool      `json:"live"`
			System    string    `json:"system"`
		} `json:"versions"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return fmt.Errorf("decode prompts: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSHA-256\tFIRST SEEN (UTC)\tLAST SEEN (UTC)\tREVISION\tLIVE\tSYSTEM")
	for _, v := range out.Versions {
		live := ""
		if v.Live {
			live = "live"
		}
		sys := strings.ReplaceAll(v.System, "\n", " ")
		if len(sys) > 60 {
			sys = sys[:57] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", dash(v.Version), v.SHA256[:min(12, len(v.SHA256))], v.FirstSeen.UTC().Format(time.DateTime),
			v.LastSeen.UTC().Format(time.DateTime), dash(v.Revision), live, sys)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
