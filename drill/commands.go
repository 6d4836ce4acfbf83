package drill

// The documented rollback commands, in one place. They are what `switchback
// runbook` prints for each pattern (package runbook, on its way): once it
// lands, rollbackCommands becomes Commands(runbook.Rollback(pattern,
// params)) and the runbook is proven by every drill.

// rollbackParams are what the commands name.
type rollbackParams struct {
	Deployment, Pool, Flag, Service, Reason string
}

func rollbackCommands(pattern string, p rollbackParams) []Command {
	switch pattern {
	case "flip":
		return []Command{{
			Args:    []string{"rollback", p.Deployment, "--reason", p.Reason},
			Curl:    `curl -s -X POST $SWITCHBACK_ADMIN/api/v1/deployments/` + p.Deployment + `/rollback -H 'Content-Type: application/json' -d '{"reason": "` + p.Reason + `"}'`,
			Explain: "undo the change that sent traffic to " + p.Pool,
		}}
	case "flag":
		return []Command{{
			Args:    []string{"flag", p.Deployment, p.Flag, "0", "--reason", p.Reason},
			Curl:    `curl -s -X PUT $SWITCHBACK_ADMIN/api/v1/deployments/` + p.Deployment + `/flags/` + p.Flag + ` -H 'Content-Type: application/json' -d '{"percent": 0, "reason": "` + p.Reason + `"}'`,
			Explain: "turn " + p.Flag + " off for everyone",
		}}
	case "config":
		return []Command{{
			Args:    []string{"config", "rollback", p.Service, "--reason", p.Reason},
			Curl:    `curl -s -X POST $SWITCHBACK_ADMIN/api/v1/services/` + p.Service + `/rollback -H 'Content-Type: application/json' -d '{"reason": "` + p.Reason + `"}'`,
			Explain: "give " + p.Service + " its previous configuration back",
		}}
	}
	return nil
}
