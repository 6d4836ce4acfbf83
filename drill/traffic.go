package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// answer is what one request through the gateway got: the example
// backend's echo (pool, and the flags the gateway decided) or its
// X-Backend-Pool header.
type answer struct {
	status int
	pool   string
	flags  []string
	err    error
}

func (a answer) String() string {
	if a.err != nil {
		return a.err.Error()
	}
	return fmt.Sprintf("%d from pool %q, flags %q", a.status, a.pool, strings.Join(a.flags, ","))
}

// failed: a transport error or a 5xx, as a client counts a failure.
func (a answer) failed() bool { return a.err != nil || a.status >= 500 }

// request sends one GET through the gateway without a subject, so the
// gateway buckets it at random and the probes cover every pool and
// cohort.
func request(ctx context.Context, env *Env) answer {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(env.Traffic, "/")+"/", nil)
	if err != nil {
		return answer{err: err}
	}
	resp, err := httpClient(env).Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	a := answer{status: resp.StatusCode, pool: resp.Header.Get("X-Backend-Pool")}
	var echo struct {
		Pool       string `json:"pool"`
		Switchback struct {
			Flags string `json:"flags"`
		} `json:"switchback"`
	}
	if json.Unmarshal(body, &echo) == nil {
		if echo.Pool != "" {
			a.pool = echo.Pool
		}
		if echo.Switchback.Flags != "" {
			a.flags = strings.Split(echo.Switchback.Flags, ",")
		}
	}
	return a
}

// setFault sends body to each fault URL (PUT), or clears them (DELETE)
// when body is nil.
func setFault(ctx context.Context, env *Env, urls []string, body any) error {
	for _, u := range urls {
		method, rd := http.MethodDelete, io.Reader(nil)
		if body != nil {
			b, _ := json.Marshal(body)
			method, rd = http.MethodPut, bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(ctx, method, u, rd)
		if err != nil {
			return err
		}
		resp, err := httpClient(env).Do(req)
		if err != nil {
			return fmt.Errorf("fault injection at %s: %w (the drill breaks a pool through the example backend's /_fault)", u, err)
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("fault injection at %s: %s: %s (the drill breaks a pool through the example backend's /_fault)", u, resp.Status, strings.TrimSpace(string(msg)))
		}
	}
	return nil
}

// faultURLs are the fault-injection endpoints of pool's upstreams.
func faultURLs(env *Env, d deploymentPools, pool string) []string {
	if env.Faults != nil {
		return env.Faults[pool]
	}
	var out []string
	for _, u := range d[pool] {
		if !strings.HasPrefix(u, "http://") {
			u = "http://" + u
		}
		out = append(out, u+"/_fault")
	}
	return out
}

// deploymentPools maps a pool to its upstreams.
type deploymentPools map[string][]string
