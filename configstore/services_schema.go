package configstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/a8e2c47e/switchback/gateway"
)

// Schema is a compiled JSON Schema for a service's documents.
type Schema struct {
	s *jsonschema.Schema
}

// storedSchema is what <prefix>/services/<name>/schema holds.
type storedSchema struct {
	Schema json.RawMessage `json:"schema"`
	Author string          `json:"author"`
	Time   time.Time       `json:"time"`
}

// refuseLoader keeps a schema from reading files or the network through
// $ref: a schema is data an operator sent, not a licence to read the
// server's disk.
type refuseLoader struct{}

func (refuseLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("$ref %s: a service schema must be self-contained", url)
}

// CompileSchema compiles a JSON Schema (draft 2020-12 unless it says
// otherwise); an invalid schema is a *gateway.FieldError on "schema".
func CompileSchema(b json.RawMessage) (*Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, &gateway.FieldError{Field: "schema", Value: "malformed JSON", Want: "want a JSON Schema object: " + err.Error()}
	}
	if _, ok := doc.(map[string]any); !ok {
		return nil, &gateway.FieldError{Field: "schema", Value: formatValue(jsonTree(b)), Want: "want a JSON Schema object, like {\"type\": \"object\"}"}
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(refuseLoader{})
	const url = "service.schema.json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, &gateway.FieldError{Field: "schema", Value: "not a schema", Want: "want a valid JSON Schema: " + err.Error()}
	}
	s, err := c.Compile(url)
	if err != nil {
		return nil, &gateway.FieldError{Field: "schema", Value: "not a schema", Want: "want a valid JSON Schema: " + err.Error()}
	}
	return &Schema{s: s}, nil
}

var schemaPrinter = message.NewPrinter(language.English)

// Validate checks a service document against the schema. A violation is a
// *gateway.FieldError naming the first offending field by its dotted path
// (config itself at the root), its value, and what the schema accepts.
func (sc *Schema) Validate(cfg json.RawMessage) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(cfg))
	if err != nil {
		return &gateway.FieldError{Field: "config", Value: "malformed JSON", Want: err.Error()}
	}
	err = sc.s.Validate(inst)
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	leaf, n := firstLeaf(ve), countLeaves(ve)
	want := "the schema wants " + leaf.ErrorKind.LocalizedString(schemaPrinter)
	if n > 1 {
		want += " (and " + strconv.Itoa(n-1) + " more violations)"
	}
	return &gateway.FieldError{Field: instancePath(leaf.InstanceLocation), Value: formatValue(valueAt(jsonTree(cfg), leaf.InstanceLocation)), Want: want}
}

func firstLeaf(e *jsonschema.ValidationError) *jsonschema.ValidationError {
	for len(e.Causes) > 0 {
		e = e.Causes[0]
	}
	return e
}

func countLeaves(e *jsonschema.ValidationError) int {
	if len(e.Causes) == 0 {
		return 1
	}
	n := 0
	for _, c := range e.Causes {
		n += countLeaves(c)
	}
	return n
}

// instancePath renders a location like db.pool.max or hosts[2]; the root
// is "config".
func instancePath(loc []string) string {
	if len(loc) == 0 {
		return "config"
	}
	var sb strings.Builder
	for i, tok := range loc {
		if _, err := strconv.Atoi(tok); err == nil && i > 0 {
			sb.WriteString("[" + tok + "]")
			continue
		}
		if i > 0 {
			sb.WriteByte('.')
		}
		sb.WriteString(tok)
	}
	return sb.String()
}

func valueAt(v any, loc []string) any {
	for _, tok := range loc {
		switch x := v.(type) {
		case map[string]any:
			v = x[tok]
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

// SetServiceSchema sets the JSON Schema every later version of a service
// must satisfy. The service's current document, if it has one, must
// satisfy it too, so a schema never rejects what is already running. An
// empty schema (null) removes it.
func (s *Store) SetServiceSchema(ctx context.Context, name string, schema json.RawMessage, author string) error {
	if err := checkName(name); err != nil {
		return err
	}
	remove := len(bytes.TrimSpace(schema)) == 0 || string(bytes.TrimSpace(schema)) == "null"
	var sc *Schema
	if !remove {
		var err error
		if sc, err = CompileSchema(schema); err != nil {
			return err
		}
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	for attempt := 1; ; attempt++ {
		st, err := s.readService(ctx, name)
		if err != nil {
			return err
		}
		if sc != nil && st.exists() {
			if err := sc.Validate(st.doc.Config); err != nil {
				var fe *gateway.FieldError
				if errors.As(err, &fe) {
					fe.Want = "the current version " + strconv.FormatUint(st.doc.Meta.Version, 10) + " must satisfy a new schema, which wants " +
						strings.TrimPrefix(fe.Want, "the schema wants ")
				}
				return err
			}
		}
		key := s.serviceSchemaKey(name)
		op := clientv3.OpDelete(key)
		if !remove {
			b, err := json.Marshal(storedSchema{Schema: schema, Author: author, Time: s.now().UTC().Round(0)})
			if err != nil {
				return fmt.Errorf("configstore: encode schema: %w", err)
			}
			op = clientv3.OpPut(key, string(b))
		}
		resp, err := s.kv.Txn(ctx).If(
			clientv3.Compare(clientv3.ModRevision(s.serviceCurrentKey(name)), "=", st.rev),
			clientv3.Compare(clientv3.ModRevision(key), "=", st.schemaRev),
		).Then(op).Commit()
		if err != nil {
			return etcdErr("set schema of "+name, err)
		}
		if resp.Succeeded {
			return nil
		}
		if err := sleep(ctx, conflictBackoff(attempt)); err != nil {
			return fmt.Errorf("%w: schema of %q: %w", ErrUnavailable, name, err)
		}
	}
}

// ServiceSchema returns a service's JSON Schema, or a *NotFoundError.
func (s *Store) ServiceSchema(ctx context.Context, name string) (json.RawMessage, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	resp, err := s.kv.Get(ctx, s.serviceSchemaKey(name))
	if err != nil {
		return nil, etcdErr("get schema of "+name, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, &NotFoundError{Deployment: name, Kind: "service", What: "schema"}
	}
	var stored storedSchema
	if err := json.Unmarshal(resp.Kvs[0].Value, &stored); err != nil {
		return nil, fmt.Errorf("configstore: decode schema of %s: %w", name, err)
	}
	return stored.Schema, nil
}
