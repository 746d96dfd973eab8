// Command grafana-dashboard-check checks Grafana dashboard JSON files strictly against the
// dashboard schema of the Grafana Foundation SDK, so that a dashboard this repository ships
// has no field Grafana would silently drop (a misspelled panel option, a stray key), no value
// of the wrong type, and none of the required fields missing.
//
//	grafana-dashboard-check FILE.json...
//
// The SDK (github.com/grafana/grafana-foundation-sdk/go v0.0.22, pinned in go.mod) is
// generated from Grafana's own schemas; its dashboard schema is schemaVersion 42, that of
// Grafana 12, and a dashboard with another schemaVersion is refused (Grafana would migrate
// it on load, so what it shows would not be what the file says).
//
// Each file goes through dashboard.Dashboard's UnmarshalJSONStrict, with the SDK's panel and
// data query plugins registered, so that a panel's options and fieldConfig.defaults.custom
// are checked by its plugin's own strict unmarshaller and a Prometheus target by the
// Prometheus query's. That walk covers every level: `panels` holds Panel or RowPanel (told
// apart by "type": "row"), and a RowPanel's own `panels` (where a collapsed row keeps its
// panels) are Panels unmarshalled strictly the same way. On top of it, this command:
//
//   - refuses a schemaVersion other than the SDK's (dashboard.NewDashboard().SchemaVersion);
//   - refuses a panel, at any depth, whose type has no panel schema in the SDK (except
//     "row"), since its options could not be checked, and a row inside a row;
//   - refuses a target whose datasource type (its own, else its panel's) is not
//     "prometheus": the dashboards shipped here query only Prometheus;
//   - fills three gaps of the SDK's strict unmarshalling: a panel's fieldConfig outside
//     defaults.custom is decoded leniently (checked here with FieldConfigSource's strict
//     unmarshaller); a target without its own datasource falls back to an unchecked map,
//     because Panel reads "targets" before "datasource" (checked here as Prometheus when its
//     panel's datasource is); and the generated UnmarshalJSONStrict methods return a typed
//     nil error, so the unions (panels, options, targets) come back empty and Validate on
//     the decoded dashboard never reaches a panel (each panel is decoded and validated here).
//
// Exit codes: 0 when every file passes, with one "ok FILE: N panels, M queries,
// schemaVersion V" line each on stdout (N counts panels at any depth, rows not included);
// 1 when any does not, with each problem on stderr as "FILE: $.json.path: message";
// 2 for a usage error.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// The only data source type the shipped dashboards query.
const prometheus = "prometheus"

type problem struct {
	path    string // JSON path-ish location, relative to the document ("" is the root)
	message string
}

type checker struct {
	problems []problem
	panels   int
	queries  int
	// Panels whose fieldConfig the strict check here found wrong: the SDK's own (lenient)
	// error for the same fieldConfig, if any, repeats it less precisely and is dropped.
	badFieldConfig map[string]bool
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: grafana-dashboard-check FILE.json...")
		os.Exit(2)
	}
	plugins.RegisterDefaultPlugins()
	failed := false
	for _, file := range os.Args[1:] {
		c := &checker{badFieldConfig: map[string]bool{}}
		schemaVersion := c.check(file)
		if len(c.problems) > 0 {
			failed = true
			for _, p := range c.problems {
				fmt.Fprintf(os.Stderr, "%s: %s: %s\n", file, "$"+p.path, p.message)
			}
			continue
		}
		fmt.Printf("ok %s: %d panels, %d queries, schemaVersion %d\n", file, c.panels, c.queries, schemaVersion)
	}
	if failed {
		os.Exit(1)
	}
}

// check records the file's problems in c and returns its schemaVersion.
func (c *checker) check(file string) uint16 {
	raw, err := os.ReadFile(file)
	if err != nil {
		c.add("", err.Error())
		return 0
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		c.add("", "not a JSON object: "+err.Error())
		return 0
	}

	var d dashboard.Dashboard
	c.addSDK("", d.UnmarshalJSONStrict(raw))
	want := dashboard.NewDashboard().SchemaVersion
	var version float64
	if v, ok := top["schemaVersion"]; ok && json.Unmarshal(v, &version) == nil && version != float64(want) {
		c.add(".schemaVersion", fmt.Sprintf("is %v; only %d is accepted (the schema of grafana-foundation-sdk "+
			"v0.0.22, Grafana 12): re-export the dashboard from Grafana 12", version, want))
	}
	// Panels come back empty from the strict unmarshal (see the package comment), so this
	// validates the rest; panels are validated one by one below.
	c.addSDK("", d.Validate())
	c.walkPanels("", top["panels"], false)

	// Drop the SDK's lenient error for a fieldConfig the strict check here reported.
	kept := c.problems[:0]
	for _, p := range c.problems {
		if strings.HasSuffix(p.path, ".fieldConfig") && c.badFieldConfig[strings.TrimSuffix(p.path, ".fieldConfig")] {
			continue
		}
		kept = append(kept, p)
	}
	c.problems = dedupe(kept)
	return d.SchemaVersion
}

// walkPanels checks the panels of a dashboard (parent "") or of a row. What does not decode
// here is left alone: the strict unmarshal has reported it already.
func (c *checker) walkPanels(parent string, raw json.RawMessage, inRow bool) {
	var panels []json.RawMessage
	if raw == nil || json.Unmarshal(raw, &panels) != nil {
		return
	}
	for i, rawPanel := range panels {
		path := parent + ".panels[" + strconv.Itoa(i) + "]"
		var fields map[string]json.RawMessage
		var panelType string
		if json.Unmarshal(rawPanel, &fields) != nil || json.Unmarshal(fields["type"], &panelType) != nil {
			continue
		}
		if panelType == "row" {
			if inRow {
				c.add(path, `a row inside a row: Grafana nests panels in rows one level deep only`)
				continue
			}
			// The row's own fields (gridPos...); its panels are walked one by one.
			nested := fields["panels"]
			delete(fields, "panels")
			if own, err := json.Marshal(fields); err == nil {
				var row dashboard.RowPanel
				if json.Unmarshal(own, &row) == nil {
					c.addSDK(path, row.Validate())
				}
			}
			c.walkPanels(path, nested, true)
			continue
		}
		c.panels++
		if _, ok := cog.ConfigForPanelcfgVariant(panelType); !ok {
			c.add(path+".type", fmt.Sprintf("panel type %q has no panel schema in grafana-foundation-sdk v0.0.22 "+
				"(not a Grafana 12 core panel), so its options cannot be checked", panelType))
		}
		if fc, ok := fields["fieldConfig"]; ok && string(fc) != "null" {
			var source dashboard.FieldConfigSource
			before := len(c.problems)
			c.addSDK(path+".fieldConfig", source.UnmarshalJSONStrict(fc))
			if len(c.problems) > before {
				c.badFieldConfig[path] = true
			}
		}
		c.checkTargets(path, fields)
		// Panel's lenient UnmarshalJSON fills targets and options, which Validate descends into.
		var panel dashboard.Panel
		if json.Unmarshal(rawPanel, &panel) == nil {
			c.addSDK(path, panel.Validate())
		}
	}
}

// checkTargets refuses a target that does not query Prometheus, and checks strictly the
// Prometheus targets the SDK leaves unchecked (those without a datasource of their own).
func (c *checker) checkTargets(path string, fields map[string]json.RawMessage) {
	var targets []json.RawMessage
	if json.Unmarshal(fields["targets"], &targets) != nil {
		return
	}
	panelType := datasourceType(fields["datasource"])
	for j, target := range targets {
		tpath := path + ".targets[" + strconv.Itoa(j) + "]"
		c.queries++
		var t map[string]json.RawMessage
		if json.Unmarshal(target, &t) != nil {
			continue
		}
		own := datasourceType(t["datasource"])
		switch {
		case own == "" && panelType == "":
			c.add(tpath+".datasource", `no datasource type, neither the target's nor the panel's: `+
				`give it {"type": "prometheus", "uid": ...}`)
		case own == "" && panelType == prometheus:
			c.addSDK(tpath, strictPrometheus(target))
		case own == "" && panelType != prometheus:
			c.add(path+".datasource.type", fmt.Sprintf("%q, not %q, for target %d: the dashboards here query only Prometheus",
				panelType, prometheus, j))
		case own != prometheus:
			c.add(tpath+".datasource.type", fmt.Sprintf("%q, not %q: the dashboards here query only Prometheus",
				own, prometheus))
		}
	}
}

func strictPrometheus(target json.RawMessage) error {
	_, err := cog.StrictUnmarshalDataquery(target, prometheus)
	return err
}

// datasourceType is the "type" of a datasource reference, "" if it has none.
func datasourceType(raw json.RawMessage) string {
	var ref struct {
		Type *string `json:"type"`
	}
	if raw == nil || json.Unmarshal(raw, &ref) != nil || ref.Type == nil {
		return ""
	}
	return *ref.Type
}

func (c *checker) add(path, message string) {
	c.problems = append(c.problems, problem{path, message})
}

// addSDK records the errors the SDK returns. Its UnmarshalJSONStrict methods return a typed
// nil (an empty cog.BuildErrors) when there is nothing wrong, so emptiness is what counts.
func (c *checker) addSDK(prefix string, err error) {
	if err == nil {
		return
	}
	var list cog.BuildErrors
	var one *cog.BuildError
	switch {
	case errors.As(err, &list):
		for _, e := range list {
			c.addBuildError(prefix, e)
		}
	case errors.As(err, &one):
		c.addBuildError(prefix, one)
	default:
		c.add(prefix, err.Error())
	}
}

// addBuildError turns an SDK error path into a JSON path. The SDK ends the path of an
// unexpected field with the Go type it was decoding ("panels[0].gridPos.GridPos"): that name
// goes into the message instead.
func (c *checker) addBuildError(prefix string, e *cog.BuildError) {
	path, message := e.Path, e.Message
	segments := strings.Split(path, ".")
	last := segments[len(segments)-1]
	if strings.HasPrefix(message, "unexpected field") && last != "" && unicode.IsUpper(rune(last[0])) {
		path = strings.Join(segments[:len(segments)-1], ".")
		message = fmt.Sprintf("%s (not in the schema of %s)", message, last)
	}
	if path != "" {
		path = "." + path
	}
	c.add(prefix+path, message)
}

// dedupe sorts problems by path (numbers in natural order) and drops repeats.
func dedupe(ps []problem) []problem {
	sort.SliceStable(ps, func(i, j int) bool { return naturalLess(ps[i].path, ps[j].path) })
	out := ps[:0]
	for i, p := range ps {
		if i > 0 && p == ps[i-1] {
			continue
		}
		out = append(out, p)
	}
	return out
}

func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := digits(a), digits(b)
		if da > 0 && db > 0 {
			na, _ := strconv.Atoi(a[:da])
			nb, _ := strconv.Atoi(b[:db])
			if na != nb {
				return na < nb
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func digits(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}
