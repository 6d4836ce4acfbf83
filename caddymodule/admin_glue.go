package caddymodule

// startAdmin and stopAdmin serve the admin API; see admin package.
func (a *App) startAdmin() error { return nil }

func (a *App) stopAdmin() error { return nil }
