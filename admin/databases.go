package admin

import (
	"net/http"

	"github.com/a8e2c47e/switchback/databases"
)

// DatabaseList is the answer of GET /api/v1/databases.
type DatabaseList struct {
	// Instance is the gateway that read them: each instance reads the
	// databases of its own Caddyfile.
	Instance  string           `json:"instance"`
	Databases []databases.Info `json:"databases"`
}

// handleDatabases lists the gateway's databases: name, dialect,
// migrations directory, version, pending count and last contract
// migration. A database that cannot be read is listed with its error;
// no DSN is ever shown.
func (s *Server) handleDatabases(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, DatabaseList{Instance: s.instance, Databases: s.databases.Describe(r.Context())})
}
