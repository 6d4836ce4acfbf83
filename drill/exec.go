package drill

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Exec runs switchback commands as a separate process of the switchback
// binary at Path, with the admin API's address and token in the
// environment (SWITCHBACK_ADMIN, SWITCHBACK_TOKEN), as an engineer's
// shell has them: the command line, its parsing and the binary are the
// ones the runbook documents, not an in-process shortcut.
type Exec struct {
	Path     string
	AdminURL string
	Token    string
}

// Run runs Path with args and returns its combined output.
func (e Exec) Run(ctx context.Context, args []string) (string, error) {
	cmd := exec.CommandContext(ctx, e.Path, args...)
	env := make([]string, 0, len(os.Environ())+2)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SWITCHBACK_ADMIN=") && !strings.HasPrefix(kv, "SWITCHBACK_TOKEN=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "SWITCHBACK_ADMIN="+e.AdminURL, "SWITCHBACK_TOKEN="+e.Token)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%w: %s", err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}
