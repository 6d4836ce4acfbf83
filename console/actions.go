package console

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/a8e2c47e/switchback/admin"
	"github.com/a8e2c47e/switchback/configstore"
	"github.com/a8e2c47e/switchback/gateway"
)

// Actions the controls ask for; each is one API call.
const (
	actFlip    = "flip"
	actTo      = "to" // all traffic to one pool, from a split
	actBack    = "rollback"
	actRestore = "restore"
	actFlag    = "flag"
	actFlagOff = "flag-off"
	actPause   = "rollout-pause"
	actResume  = "rollout-resume"
	actAbort   = "rollout-abort"
)

// intent is a control's request, as the dialog's form carries it.
type intent struct {
	Action  string
	Version uint64 // restore
	Pool    string // to
	Flag    string
	Percent float64
	// IfMatch is the version the dialog's diff was computed from: the
	// write applies to it or is refused, so what is written is what was
	// shown.
	IfMatch uint64
}

// parseIntent reads an intent from a query or form; errors name the field,
// the value and what is accepted.
func parseIntent(v url.Values) (intent, error) {
	in := intent{Action: v.Get("action"), Flag: v.Get("flag")}
	switch in.Action {
	case actFlip, actBack, actPause, actResume, actAbort:
	case actTo:
		in.Pool = v.Get("pool")
		if !gateway.ValidName(in.Pool) {
			return in, fmt.Errorf("pool %q: want the name of the pool that gets all traffic", in.Pool)
		}
	case actRestore:
		n, err := strconv.ParseUint(v.Get("version"), 10, 64)
		if err != nil || n == 0 {
			return in, fmt.Errorf("version %q: want the version number to restore (1, 2, ...)", v.Get("version"))
		}
		in.Version = n
	case actFlag, actFlagOff:
		if !gateway.ValidName(in.Flag) {
			return in, fmt.Errorf("flag %q: want a flag name", in.Flag)
		}
		if in.Action == actFlag {
			raw := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v.Get("percent")), "%"))
			f, err := strconv.ParseFloat(raw, 64)
			if err != nil || f < 0 || f > 100 {
				return in, fmt.Errorf("percent of flag %s %q: want a number from 0 to 100", in.Flag, v.Get("percent"))
			}
			in.Percent = f
		}
	default:
		return in, fmt.Errorf("action %q: want one of flip, to, rollback, restore, flag, flag-off, rollout-pause, rollout-resume, rollout-abort", in.Action)
	}
	if s := v.Get("if_match"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil || n == 0 {
			return in, fmt.Errorf("if_match %q: want a version number", s)
		}
		in.IfMatch = n
	}
	return in, nil
}

type confirmData struct {
	Name    string
	Title   string
	Intent  intent
	Percent string
	Changes []change
	// Note describes a change that is not a document diff (a rollout
	// action), or why the diff is empty.
	Note string
	Back string
}

// handleConfirm renders the dialog: what the control will write, computed
// from the current version, which the write is then pinned to.
func (c *Console) handleConfirm(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	if !s.canChange() {
		c.fail(w, r, s, http.StatusForbidden, s.who.Name+" (role "+string(s.who.Role)+") may look but not change anything.")
		return
	}
	in, err := parseIntent(r.URL.Query())
	if err != nil {
		c.fail(w, r, s, http.StatusBadRequest, err.Error())
		return
	}
	a, ctx := c.apiFor(r, s), r.Context()
	d, err := a.Status(ctx, name)
	if err != nil {
		c.fail(w, r, s, apiStatus(err), "Could not read deployment "+strconv.Quote(name)+": "+apiMessage(err))
		return
	}
	in.IfMatch = d.Version
	data := confirmData{Name: name, Intent: in, Back: Prefix + "deployments/" + url.PathEscape(name)}
	if err := c.preview(ctx, a, d, &data); err != nil {
		c.fail(w, r, s, apiStatus(err), apiMessage(err))
		return
	}
	c.render(w, r, http.StatusOK, "confirm", &page{Title: data.Title, Nav: "overview", User: s, Data: data})
}

// preview fills the dialog's title and the diff the intent would write to
// d. Flip and the flag controls edit d locally for the preview only; the
// write is the API's.
func (c *Console) preview(ctx context.Context, a *api, d admin.Deployment, data *confirmData) error {
	in := &data.Intent
	cur := d.Config()
	edited := func(edit func(*gateway.Config)) {
		next := cur.Clone()
		edit(&next)
		data.Changes = changesOf(configstore.Diff(cur, next))
	}
	versionDiff := func(to uint64) error {
		res, err := a.Diff(ctx, d.Name, d.Version, to)
		if err != nil {
			return err
		}
		data.Changes = changesOf(res.Changes)
		return nil
	}
	switch in.Action {
	case actFlip:
		to, err := flipTarget(cur)
		if err != nil {
			return &admin.APIError{Status: http.StatusConflict, Message: err.Error()}
		}
		data.Title = "Flip " + d.Name + ": all traffic to " + to
		edited(func(c *gateway.Config) {
			for p := range c.Weights {
				c.Weights[p] = 0
			}
			c.Weights[to] = 100
		})
		data.Note = "Pool " + otherPool(cur, to) + " leaves traffic and stays the verified rollback target for the deployment's retain period."
	case actTo:
		if _, ok := cur.Pools[in.Pool]; !ok {
			return &admin.APIError{Status: http.StatusNotFound, Message: fmt.Sprintf("pool %q not found", in.Pool)}
		}
		data.Title = "All traffic of " + d.Name + " to " + in.Pool
		edited(func(c *gateway.Config) { c.Weights = allTo(c.Pools, in.Pool) })
	case actBack:
		if d.Version < 2 {
			return &admin.APIError{Status: http.StatusConflict, Message: "version 1 has no version before it to roll back to"}
		}
		data.Title = fmt.Sprintf("Roll back %s to version %d", d.Name, d.Version-1)
		if err := versionDiff(d.Version - 1); err != nil {
			return err
		}
	case actRestore:
		data.Title = fmt.Sprintf("Restore version %d of %s", in.Version, d.Name)
		if err := versionDiff(in.Version); err != nil {
			return err
		}
	case actFlag, actFlagOff:
		if _, ok := d.Flags[in.Flag]; !ok && in.Action == actFlagOff {
			return &admin.APIError{Status: http.StatusNotFound, Message: fmt.Sprintf("flag %q not found", in.Flag)}
		}
		data.Title = fmt.Sprintf("Set flag %s to %s%%", in.Flag, strconv.FormatFloat(in.Percent, 'f', -1, 64))
		if in.Action == actFlagOff {
			data.Title = "Turn off flag " + in.Flag + " (0%)"
		}
		edited(func(c *gateway.Config) {
			if c.Flags == nil {
				c.Flags = map[string]gateway.Flag{}
			}
			c.Flags[in.Flag] = gateway.Flag{Percent: in.Percent}
		})
	case actPause, actResume, actAbort:
		verb := strings.TrimPrefix(in.Action, "rollout-")
		data.Title = strings.ToUpper(verb[:1]) + verb[1:] + " the rollout of " + d.Name
		data.Note = map[string]string{
			actPause:  "The rollout holds at its current step; traffic stays where it is.",
			actResume: "The rollout continues; its current step bakes again in full.",
			actAbort:  "The rollout stops and its target goes back to where it was before the rollout; that writes a new version.",
		}[in.Action]
	}
	data.Percent = strconv.FormatFloat(in.Percent, 'f', -1, 64)
	if data.Note == "" && len(data.Changes) == 0 {
		data.Note = "This writes a version with no change: the deployment already looks like this."
	}
	return nil
}

// allTo is the weights that send all traffic to pool.
func allTo(pools map[string]gateway.Pool, pool string) map[string]float64 {
	w := make(map[string]float64, len(pools))
	for p := range pools {
		w[p] = 0
	}
	w[pool] = 100
	return w
}

// otherPool is the one of two pools that is not name.
func otherPool(c gateway.Config, name string) string {
	for p := range c.Pools {
		if p != name {
			return p
		}
	}
	return ""
}

// handleApply makes the change through the API with the user's identity,
// then shows the new state.
func (c *Console) handleApply(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	if !c.readForm(w, r, s) {
		return
	}
	in, err := parseIntent(r.PostForm)
	if err != nil {
		c.fail(w, r, s, http.StatusBadRequest, err.Error())
		return
	}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if reason == "" {
		c.fail(w, r, s, http.StatusBadRequest, "Reason: say why you make this change; it is recorded with the new version. Nothing was written.")
		return
	}
	a, ctx := c.apiFor(r, s), r.Context()
	o := admin.WriteOptions{Reason: reason, IfMatch: in.IfMatch}
	var d admin.Deployment
	var ro admin.RolloutStatus
	switch in.Action {
	case actFlip:
		d, err = a.Flip(ctx, name, o)
	case actTo:
		var cur admin.Deployment
		if cur, err = a.Status(ctx, name); err == nil {
			d, err = a.SetWeights(ctx, name, allTo(cur.Pools, in.Pool), o)
		}
	case actBack:
		d, err = a.Rollback(ctx, name, o)
	case actRestore:
		d, err = a.Restore(ctx, name, in.Version, o)
	case actFlag:
		d, err = a.SetFlag(ctx, name, in.Flag, in.Percent, o)
	case actFlagOff:
		d, err = a.SetFlag(ctx, name, in.Flag, 0, o)
	case actPause:
		ro, err = a.PauseRollout(ctx, name, o)
	case actResume:
		ro, err = a.ResumeRollout(ctx, name, o)
	case actAbort:
		ro, err = a.AbortRollout(ctx, name, o)
	}
	if err != nil {
		msg := apiMessage(err)
		if apiStatus(err) == http.StatusConflict && in.IfMatch != 0 {
			msg = fmt.Sprintf("The deployment changed after the dialog showed its diff from version %d; nothing was written. Look at the new state and try again. (%s)", in.IfMatch, msg)
		}
		c.fail(w, r, s, apiStatus(err), msg)
		return
	}
	back := Prefix + "deployments/" + url.PathEscape(name)
	switch {
	case d.Version != 0:
		back += "?wrote=" + strconv.FormatUint(d.Version, 10)
	case ro.State != "":
		back += "?rollout=" + url.QueryEscape(string(ro.State))
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}
