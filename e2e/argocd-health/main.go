// Command argocd-health runs an Argo CD resource health script the way Argo CD does, so that
// the scripts in deploy/argocd/ are tested with the interpreter that will run them.
//
//	argocd-health SCRIPT.lua < object.json
//
// It reads one Kubernetes object as JSON on standard input, sets it as the global `obj` (maps
// become tables with string keys, arrays become tables with keys 1..n, integers and floats
// become numbers, as Argo CD's util/lua decodeValue does), runs the script in gopher-lua with
// the libraries Argo CD opens for a health check configured in argocd-cm (package, base and
// table; not string, math or io), under the same one-second limit, and prints the returned
// table as {"status": ..., "message": ...}. A status Argo CD does not know becomes Unknown
// with Argo CD's message, as Argo CD reports it.
//
// Exit codes: 0 with a result on stdout; 1 when the script fails or returns something other
// than a table (Argo CD shows such a resource with a health error); 2 for a usage error.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// The health statuses Argo CD accepts from a script.
var validStatuses = map[string]bool{
	"Healthy":     true,
	"Progressing": true,
	"Degraded":    true,
	"Suspended":   true,
	"Missing":     true,
	"Unknown":     true,
}

// Argo CD's message for a status it does not know.
const invalidHealthStatus = "Lua returned an invalid health status"

type result struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health SCRIPT.lua < object.json")
		os.Exit(2)
	}
	out, err := run(os.Args[1], os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "argocd-health:", err)
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "argocd-health: writing the result:", err)
		os.Exit(1)
	}
}

func run(scriptPath string, input io.Reader) (*result, error) {
	script, err := os.ReadFile(scriptPath)
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(input)
	if err != nil {
		return nil, fmt.Errorf("reading the object: %w", err)
	}
	object, err := decodeJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("reading the object: %w", err)
	}

	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return nil, fmt.Errorf("opening the %s library: %w", lib.name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", decodeValue(l, object))
	if err := l.DoString(string(script)); err != nil {
		return nil, fmt.Errorf("%s: %w", scriptPath, err)
	}
	returned := l.Get(-1)
	table, ok := returned.(*lua.LTable)
	if !ok {
		return nil, fmt.Errorf("expect table output from Lua script, not %s", returned.Type())
	}
	status, err := stringField(table, "status")
	if err != nil {
		return nil, err
	}
	message, err := stringField(table, "message")
	if err != nil {
		return nil, err
	}
	if !validStatuses[status] {
		return &result{Status: "Unknown", Message: invalidHealthStatus}, nil
	}
	return &result{Status: status, Message: message}, nil
}

// stringField reads a string field of the returned table; absent reads as "", as Argo CD's
// JSON round trip of the table does, and any other type is an error there too.
func stringField(t *lua.LTable, key string) (string, error) {
	switch v := t.RawGetString(key).(type) {
	case *lua.LNilType:
		return "", nil
	case lua.LString:
		return string(v), nil
	default:
		return "", fmt.Errorf("the returned table's %q is a %s, not a string", key, v.Type())
	}
}

// decodeJSON reads JSON the way the Kubernetes unstructured decoder does: integers as int64,
// other numbers as float64.
func decodeJSON(raw []byte) (interface{}, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v interface{}
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, ok := v.(map[string]interface{}); !ok {
		return nil, fmt.Errorf("expected a JSON object")
	}
	return numbers(v), nil
}

func numbers(v interface{}) interface{} {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []interface{}:
		for i := range x {
			x[i] = numbers(x[i])
		}
		return x
	case map[string]interface{}:
		for k := range x {
			x[k] = numbers(x[k])
		}
		return x
	}
	return v
}

// decodeValue turns a decoded object into Lua values as Argo CD's util/lua does.
func decodeValue(l *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []interface{}:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(decodeValue(l, item))
		}
		return arr
	case map[string]interface{}:
		tbl := l.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), decodeValue(l, item))
		}
		return tbl
	}
	return lua.LNil
}
