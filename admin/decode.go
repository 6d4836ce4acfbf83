package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
)

// decodeBody reads one JSON object into v: the one decoder of every admin
// request body. Besides unknown fields and data after the object it
// refuses what encoding/json lets through silently: a key given twice at
// any depth (it keeps the last) and a key that names a field only when
// case is ignored (it matches "Weights" to weights). Either way the request
// would not do what its sender reads in it. An empty body decodes as {}.
func decodeBody(r *http.Request, v any) error {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return bodyError(err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := checkKeys(json.NewDecoder(bytes.NewReader(data)), reflect.TypeOf(v), "", 0); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return bodyError(err)
		}
		return &apiError{status: http.StatusBadRequest, msg: "malformed JSON: want one object, got data after it"}
	}
	return nil
}

// maxDepth bounds how deeply a body may nest, as encoding/json does.
const maxDepth = 10000

// checkKeys reads one JSON value from dec, walking the Go type t it will
// decode into (nil where the type says nothing about the keys), and
// refuses duplicate keys, keys that match a field only case-insensitively
// and unknown fields, naming each by its path (weights.blue, pools[0]).
func checkKeys(dec *json.Decoder, t reflect.Type, path string, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return bodyError(err)
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil // a scalar
	}
	if depth >= maxDepth {
		return &apiError{status: http.StatusBadRequest, field: path, msg: fmt.Sprintf("malformed JSON: nested deeper than %d levels", maxDepth)}
	}
	t = decodedAs(t)
	switch delim {
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := checkKeys(dec, elem, fmt.Sprintf("%s[%d]", path, i), depth+1); err != nil {
				return err
			}
		}
	case '{':
		fields := jsonFields(t)
		var elem reflect.Type
		if t != nil && t.Kind() == reflect.Map {
			elem = t.Elem()
		}
		seen := make(map[string]bool)
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return bodyError(err)
			}
			key, _ := tok.(string) // object keys are strings, or Token failed
			at := key
			if path != "" {
				at = path + "." + key
			}
			if seen[key] {
				return &apiError{status: http.StatusBadRequest, field: at,
					msg: fmt.Sprintf("key %q given twice: give each key once", at)}
			}
			seen[key] = true
			vt := elem
			if fields != nil {
				ft, ok := fields[key]
				if !ok {
					return unknownField(fields, path, at, key)
				}
				vt = ft
			}
			if err := checkKeys(dec, vt, at, depth+1); err != nil {
				return err
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing ] or }
		return bodyError(err)
	}
	return nil
}

func unknownField(fields map[string]reflect.Type, path, at, key string) error {
	for name := range fields {
		if strings.EqualFold(name, key) {
			want := name
			if path != "" {
				want = path + "." + name
			}
			return &apiError{status: http.StatusBadRequest, field: at,
				msg: fmt.Sprintf("unknown field %q: field names are case-sensitive; did you mean %q?", at, want)}
		}
	}
	return &apiError{status: http.StatusBadRequest, field: at, msg: fmt.Sprintf("unknown field %q", at)}
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// decodedAs is the type whose keys matter for a value decoded into t:
// pointers are followed, and a type with its own UnmarshalJSON says
// nothing about keys (nil).
func decodedAs(t reflect.Type) reflect.Type {
	for t != nil {
		if t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
			return nil
		}
		if t.Kind() != reflect.Pointer {
			return t
		}
		t = t.Elem()
	}
	return nil
}

// jsonFields maps the JSON names of a struct's fields to their types, as
// encoding/json sees them (tags, embedded structs' fields promoted, the
// shallower field winning); nil for anything but a struct.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	fields := make(map[string]reflect.Type)
	addFields(fields, t)
	return fields
}

func addFields(fields map[string]reflect.Type, t reflect.Type) {
	var embedded []reflect.Type
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				embedded = append(embedded, ft)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, ok := fields[name]; !ok {
			fields[name] = f.Type
		}
	}
	for _, e := range embedded {
		addFields(fields, e)
	}
}

func bodyError(err error) error {
	var (
		se  *json.SyntaxError
		te  *json.UnmarshalTypeError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.As(err, &se):
		return &apiError{status: http.StatusBadRequest, msg: fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se)}
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return &apiError{status: http.StatusBadRequest, msg: "malformed JSON: the body ends early"}
	case errors.As(err, &te):
		what := te.Field
		if what == "" { // the body itself, such as a string where an object belongs
			what = "body"
		}
		return &apiError{status: http.StatusBadRequest, field: te.Field,
			msg: fmt.Sprintf("%s: want a JSON %s, got %s", what, jsonKind(te.Type.Kind().String()), te.Value)}
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if uq, err := strconv.Unquote(name); err == nil {
			name = uq
		}
		return &apiError{status: http.StatusBadRequest, field: name, msg: fmt.Sprintf("unknown field %q", name)}
	}
	return &apiError{status: http.StatusBadRequest, msg: "malformed JSON: " + err.Error()}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "float64", "float32", "int", "int64", "uint64", "uint", "int32", "uint32":
		return "number"
	case "map", "struct":
		return "object"
	case "slice", "array":
		return "array"
	case "bool":
		return "boolean"
	case "ptr":
		return "value"
	}
	return goKind
}
