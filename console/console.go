// Package console is the rollback console: server-rendered pages on the
// admin listener (mounted at /ui/) where an on-call engineer sees what
// changed and undoes it.
//
// The console holds no write path of its own. Every read and every change
// is a request to the admin API's own handler, made in-process with the
// signed-in user's identity (their bearer token, or their loopback address
// when the API has no tokens file), so roles, validation, If-Match, audit
// and the cross-origin checks are the API's. Only the HTTP API's shape
// matters here, never its internals.
//
//	GET  /ui/                              overview: every deployment, recent events
//	GET  /ui/signin, POST /ui/signin       the tokens file's sign-in form
//	POST /ui/signout
//	GET  /ui/deployments/{name}            pools, flags, guard windows, rollout, events
//	GET  /ui/deployments/{name}/history    one row per version, paginated
//	GET  /ui/deployments/{name}/diff       two versions side by side
//	GET  /ui/deployments/{name}/confirm    the dialog: the diff a control will write
//	POST /ui/deployments/{name}/apply      writes it through the API
//	GET  /ui/releases                      every release, newest first
//	GET  /ui/releases/{id}                 what it changed, its timeline, its rollback
//	GET  /ui/releases/{id}/rollback        the dialog: the API's plan of the rollback
//	POST /ui/releases/{id}/rollback        asks the API for it
//	GET  /ui/drills?pattern=               drill results, newest first, and each pattern's last pass
//	GET  /ui/live?deployment=NAME[&release=ID]   server-sent "changed" events
//	GET  /ui/static/...                    embedded CSS and JS
//	GET  /ui/services, changesets          places for later issues
package console

import (
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/a8e2c47e/switchback/admin"
)

// Prefix is where the console is mounted on the admin listener.
const Prefix = "/ui/"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configure a Console.
type Options struct {
	// API is the admin API the console reads and writes through; required.
	API *admin.Server
	// Logger; nil means no logging.
	Logger *zap.Logger
	// Now is the clock for sessions and "ago" times.
	Now func() time.Time
	// Poll is how often an open page's live stream asks the API whether
	// anything changed; 0 means 250 ms.
	Poll time.Duration
	// SessionTTL is how long a sign-in lasts; 0 means 12 hours.
	SessionTTL time.Duration
}

// Console is the console's http.Handler. Mount it with
// admin.Server.Mount(console.Prefix, c).
type Console struct {
	api    *admin.Server
	log    *zap.Logger
	now    func() time.Time
	poll   time.Duration
	ttl    time.Duration
	pages  map[string]*template.Template
	static http.Handler
	mux    *http.ServeMux
	// localCSRF is the form token when the API has no tokens file and so
	// there are no sessions.
	localCSRF string

	mu       sync.Mutex // guards sessions
	sessions map[string]*session
}

// New builds a Console.
func New(opts Options) (*Console, error) {
	if opts.API == nil {
		return nil, errors.New("console: Options.API is required")
	}
	c := &Console{
		api:      opts.API,
		log:      opts.Logger,
		now:      opts.Now,
		poll:     opts.Poll,
		ttl:      opts.SessionTTL,
		sessions: map[string]*session{},
		mux:      http.NewServeMux(),
	}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.poll <= 0 {
		c.poll = 250 * time.Millisecond
	}
	if c.ttl <= 0 {
		c.ttl = 12 * time.Hour
	}
	c.localCSRF = randomID()
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	c.static = http.StripPrefix(Prefix+"static/", http.FileServerFS(sub))
	c.routes()
	return c, nil
}

func (c *Console) routes() {
	const d = "/ui/deployments/{name}"
	c.mux.Handle("GET /ui/static/", c.static)
	c.mux.HandleFunc("GET /ui/signin", c.handleSignInForm)
	c.mux.HandleFunc("POST /ui/signin", c.handleSignIn)
	c.mux.HandleFunc("POST /ui/signout", c.handleSignOut)
	c.mux.HandleFunc("GET /ui/{$}", c.signedIn(c.handleOverview))
	c.mux.HandleFunc("GET "+d, c.signedIn(c.handleDeployment))
	c.mux.HandleFunc("GET "+d+"/history", c.signedIn(c.handleHistory))
	c.mux.HandleFunc("GET "+d+"/diff", c.signedIn(c.handleDiff))
	c.mux.HandleFunc("GET "+d+"/confirm", c.signedIn(c.handleConfirm))
	c.mux.HandleFunc("POST "+d+"/apply", c.signedIn(c.handleApply))
	c.mux.HandleFunc("GET /ui/live", c.signedIn(c.handleLive))
	const rl = "/ui/releases/{id}"
	c.mux.HandleFunc("GET /ui/releases", c.signedIn(c.handleReleases))
	c.mux.HandleFunc("GET "+rl, c.signedIn(c.handleRelease))
	c.mux.HandleFunc("GET "+rl+"/rollback", c.signedIn(c.handleRollbackPlan))
	c.mux.HandleFunc("POST "+rl+"/rollback", c.signedIn(c.handleRollback))
	c.mux.HandleFunc("GET /ui/drills", c.signedIn(c.handleDrills))
	for _, p := range later {
		c.mux.HandleFunc("GET /ui/"+p.Slug, c.signedIn(c.handleLater))
	}
	c.mux.HandleFunc("/ui/", c.signedIn(func(w http.ResponseWriter, r *http.Request, s *session) {
		c.fail(w, r, s, http.StatusNotFound, "No such page: "+r.URL.Path)
	}))
}

// ServeHTTP sets the headers every answer carries, then routes.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Nothing inline, nothing from elsewhere: the pages' only script and
	// style are the embedded files.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	c.mux.ServeHTTP(w, r)
}

func randomID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("console: crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

var _ http.Handler = (*Console)(nil)
