package admin

import (
	"time"

	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/configstore"
)

// Record is the audit trail of one mutation attempt that passed
// authentication: who, what, why and when, and how it ended. A rejected
// attempt has Status >= 400, Error set and no Changes.
type Record struct {
	Time time.Time `json:"time"`
	// Who is the token's name, or "local" without a tokens file.
	Who    string             `json:"who"`
	Role   Role               `json:"role"`
	Remote string             `json:"remote"`
	Source configstore.Source `json:"source"`
	// Action is flip, weights, pool, flag, delete-flag, restore or rollback.
	Action     string `json:"action"`
	Deployment string `json:"deployment"`
	// Service is the service acted on (services.go), ChangeSet the change
	// set applied or reverted.
	Service   string `json:"service,omitempty"`
	ChangeSet string `json:"changeset,omitempty"`
	// Target is the pool or flag acted on, or the version restored.
	Target  string               `json:"target,omitempty"`
	IfMatch uint64               `json:"if_match,omitempty"`
	Reason  string               `json:"reason,omitempty"`
	From    uint64               `json:"from,omitempty"`
	Version uint64               `json:"version,omitempty"`
	Changes []configstore.Change `json:"changes,omitempty"`
	Status  int                  `json:"status"`
	Error   string               `json:"error,omitempty"`
}

// logAudit is the default Audit: one info line per record.
func logAudit(log *zap.Logger) func(Record) {
	log = log.Named("audit")
	return func(rec Record) {
		fields := []zap.Field{
			zap.Time("time", rec.Time),
			zap.String("who", rec.Who),
			zap.String("role", string(rec.Role)),
			zap.String("remote", rec.Remote),
			zap.String("source", string(rec.Source)),
			zap.String("action", rec.Action),
			zap.String("deployment", rec.Deployment),
			zap.String("service", rec.Service),
			zap.String("changeset", rec.ChangeSet),
			zap.String("target", rec.Target),
			zap.String("reason", rec.Reason),
			zap.Uint64("if_match", rec.IfMatch),
			zap.Uint64("from", rec.From),
			zap.Uint64("version", rec.Version),
			zap.Any("changes", rec.Changes),
			zap.Int("status", rec.Status),
		}
		if rec.Error != "" {
			log.Warn("admin change refused", append(fields, zap.String("error", rec.Error))...)
			return
		}
		log.Info("admin change", fields...)
	}
}
