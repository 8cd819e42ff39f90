package loadtest

import "github.com/cairnhq/cairn/configs"

// padLookup applies Options.Keys and Options.Routes to a scenario's gateway
// config (ManyKeysRoutesConfig) and returns it with the model name clients
// should send: model itself without padding, model+"-large" with routes
// padding, which reaches the same route through its glob behind every
// filler glob. The scenario's own key stays last among the keys. The counts
// are recorded in the report's params as keys and routes.
func (e *runEnv) padLookup(cfg configs.Config, model string) (configs.Config, string) {
	if e.o.Keys <= 0 && e.o.Routes <= 0 {
		return cfg, model
	}
	cfg = ManyKeysRoutesConfig(cfg, e.o.Keys, e.o.Routes)
	e.rep.Params["keys"] = float64(len(cfg.Keys))
	e.rep.Params["routes"] = float64(len(cfg.Routes))
	if e.o.Routes > 0 {
		model += "-large"
	}
	e.progress("gateway config padded to %d keys and %d routes; clients ask for %s", len(cfg.Keys), len(cfg.Routes), model)
	return cfg, model
}
