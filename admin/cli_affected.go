package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/a8e2c47e/switchback/cmdline"
)

// Affected returns the requests a release served that may have written
// data, merged from every live instance (GET /api/v1/releases/{id}/affected).
func (c *Client) Affected(ctx context.Context, idOrName string) (Affected, error) {
	var out Affected
	err := c.getRaw(ctx, affectedPath(idOrName, "json"), func(resp *http.Response) error {
		data, err := io.ReadAll(io.LimitReader(resp.Body, peerMaxBody))
		if err != nil {
			return err
		}
		if c.raw != nil {
			c.raw(data)
		}
		return json.Unmarshal(data, &out)
	})
	return out, err
}

// AffectedCSV writes the same as CSV, with a header row, to w, and
// returns each instance's dropped count ("gw-a=0, gw-b=12") and the
// instances that did not answer, as the API's headers say.
func (c *Client) AffectedCSV(ctx context.Context, idOrName string, w io.Writer) (dropped, missing string, err error) {
	err = c.getRaw(ctx, affectedPath(idOrName, "csv"), func(resp *http.Response) error {
		dropped, missing = resp.Header.Get("X-Switchback-Dropped"), resp.Header.Get("X-Switchback-Missing")
		_, err := io.Copy(w, resp.Body)
		return err
	})
	return dropped, missing, err
}

func affectedPath(idOrName, format string) string {
	return "/api/v1/releases/" + url.PathEscape(idOrName) + "/affected?format=" + format
}

// getRaw sends a GET and hands a 200 answer to read; any other answer is
// an *APIError. Unlike do it streams: a merged list can be large.
func (c *Client) getRaw(ctx context.Context, path string, read func(*http.Response) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.Agent != "" {
		req.Header.Set(clientHeader, c.Agent)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("admin API at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return apiErrorFrom(resp.StatusCode, data)
	}
	if err := read(resp); err != nil {
		return fmt.Errorf("admin API at %s: read answer: %w", c.base, err)
	}
	return nil
}

// releaseAffected runs "switchback release affected ID|NAME".
func (inv *invocation) releaseAffected(ctx context.Context, pos []string, format string) int {
	if len(pos) != 1 {
		return inv.usagef("want one release id or name")
	}
	if inv.json {
		format = "json"
	}
	switch format {
	case "csv":
		dropped, missing, err := inv.c.AffectedCSV(ctx, pos[0], inv.stdout)
		if err != nil {
			return inv.fail(err)
		}
		// The CSV stays clean on stdout; what it cannot say goes to stderr.
		fmt.Fprintf(inv.stderr, "dropped per instance: %s\n", oneLine(firstNonEmpty(dropped, "none")))
		if missing != "" {
			fmt.Fprintf(inv.stderr, "MISSING (did not answer; their entries are not in the list): %s\n", oneLine(missing))
			return cmdline.ExitError
		}
		return cmdline.ExitOK
	case "json", "text":
		if format == "json" && inv.c.raw == nil {
			inv.json = true
			inv.c.raw = func(b []byte) { inv.raw = b }
		}
		a, err := inv.c.Affected(ctx, pos[0])
		if err != nil {
			return inv.fail(err)
		}
		code := inv.print(func(w io.Writer) { printAffected(w, a) })
		if len(a.Missing) > 0 && code == cmdline.ExitOK {
			return cmdline.ExitError
		}
		return code
	}
	return inv.usagef("--format %q: want text, csv or json", format)
}

// printAffected shows the per-instance summary, then the requests:
//
//	release r-20261129-204512-3f9a (v2) of checkout, rolled_back: 2 requests, 0 dropped
//	INSTANCE  ENTRIES  DROPPED  SINCE                 UNTIL
//	gw-a      1        0        2026-11-29 20:45:12Z  2026-11-29 20:52:03Z
//
//	TIME                  INSTANCE  SUBJECT  METHOD  PATH     STATUS  REQUEST ID  POOL   FLAGS
//	2026-11-29 20:46:01Z  gw-a      u42      POST    /orders  201     5f0c...     green  -
func printAffected(w io.Writer, a Affected) {
	fmt.Fprintf(w, "release %s (%s) of %s, %s: %d requests, %d dropped\n", oneLine(a.Release), oneLine(a.Name),
		oneLine(a.Deployment), oneLine(string(a.Status)), len(a.Entries), a.Dropped)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tENTRIES\tDROPPED\tSINCE\tUNTIL")
	for _, in := range a.Instances {
		if !in.Recorded {
			fmt.Fprintf(tw, "%s\t0\t0\tnot recorded\t-\n", oneLine(in.Instance))
			continue
		}
		dropped := fmt.Sprint(in.Dropped)
		if in.Dropped > 0 {
			dropped += " (until " + formatTime(in.DroppedUntil) + ")"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", oneLine(in.Instance), in.Entries, dropped, formatTime(in.Since), formatTime(in.Until))
	}
	for _, m := range a.Missing {
		fmt.Fprintf(tw, "%s\tMISSING\t-\t%s\t\n", oneLine(m.Instance), oneLine(m.Error))
	}
	tw.Flush()
	if len(a.Entries) == 0 {
		fmt.Fprintln(w, "\nno requests recorded")
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "TIME\tINSTANCE\tSUBJECT\tMETHOD\tPATH\tSTATUS\tREQUEST ID\tPOOL\tFLAGS")
	for _, e := range a.Entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", e.Time.UTC().Format("2006-01-02 15:04:05.000Z"), oneLine(e.Instance),
			firstNonEmpty(oneLine(e.Subject), "-"), oneLine(e.Method), oneLine(e.Path), e.Status,
			firstNonEmpty(oneLine(e.RequestID), "-"), oneLine(e.Pool), firstNonEmpty(oneLine(strings.ReplaceAll(e.Flags, ",", ", ")), "-"))
	}
	tw.Flush()
}
