package criteria

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Query runs a PromQL instant query against a Prometheus-compatible HTTP
// API (GET base/api/v1/query) and returns its one number: a scalar, or a
// vector of exactly one sample. An empty vector is an error, not 0: a
// query over a metric that is gone must not read as "all is well".
func Query(ctx context.Context, client *http.Client, base, query string) (float64, error) {
	u, err := url.Parse(base)
	if err != nil {
		return 0, fmt.Errorf("prometheus %q: %w", base, err)
	}
	u = u.JoinPath("api/v1/query")
	u.RawQuery = url.Values{"query": {query}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, fmt.Errorf("prometheus query: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("prometheus query: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return 0, fmt.Errorf("prometheus query: status %d, body not the API's JSON: %w", resp.StatusCode, err)
	}
	if body.Status != "success" {
		return 0, fmt.Errorf("prometheus query %q: %s (status %d)", query, body.Error, resp.StatusCode)
	}
	var pair [2]any
	switch body.Data.ResultType {
	case "scalar":
		if err := json.Unmarshal(body.Data.Result, &pair); err != nil {
			return 0, fmt.Errorf("prometheus query %q: scalar: %w", query, err)
		}
	case "vector":
		var vec []struct {
			Value [2]any `json:"value"`
		}
		if err := json.Unmarshal(body.Data.Result, &vec); err != nil {
			return 0, fmt.Errorf("prometheus query %q: vector: %w", query, err)
		}
		if len(vec) != 1 {
			return 0, fmt.Errorf("prometheus query %q: %d series, want exactly one (wrap it in sum() or max())", query, len(vec))
		}
		pair = vec[0].Value
	default:
		return 0, fmt.Errorf("prometheus query %q: result type %q, want scalar or vector", query, body.Data.ResultType)
	}
	s, ok := pair[1].(string)
	if !ok {
		return 0, fmt.Errorf("prometheus query %q: sample value %v is not a string", query, pair[1])
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("prometheus query %q: sample value %q: %w", query, s, err)
	}
	return v, nil
}

// ErrTooSlow is a health endpoint that did not answer within its limit.
var ErrTooSlow = errors.New("criteria: no answer in time")

// Check requests a health endpoint and returns its status and how long it
// took; an answer slower than within is ErrTooSlow.
func Check(ctx context.Context, client *http.Client, target string, within time.Duration) (int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("health %s: %w", target, err)
	}
	start := time.Now()
	resp, err := client.Do(req)
	took := time.Since(start)
	if errors.Is(err, context.DeadlineExceeded) {
		return 0, took, fmt.Errorf("health %s: %w within %v", target, ErrTooSlow, within)
	}
	if err != nil {
		return 0, took, fmt.Errorf("health %s: %w", target, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, took, nil
}
