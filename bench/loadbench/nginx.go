package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// errNoNginx means no nginx binary was found; the nginx row is optional.
var errNoNginx = errors.New("nginx not found")

// nginxDirs are searched for nginx after $PATH: Debian's nginx-light puts
// it in /usr/sbin, which is not on every user's $PATH.
var nginxDirs = []string{"/usr/sbin"}

// findNginx returns the nginx binary to run: path if given, else nginx on
// $PATH or in one of dirs.
func findNginx(path string, dirs []string) (string, error) {
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("-nginx: %w", err)
		}
		return path, nil
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	for _, d := range dirs {
		if p := filepath.Join(d, "nginx"); isFile(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w on $PATH or in %s; install it (apt-get install nginx-light) or point -nginx at it", errNoNginx, strings.Join(dirs, ", "))
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// startNginx runs nginx in the foreground as a child, with a configuration
// and all its state in a temporary prefix, serving the nginx target on a
// free loopback port. On error nothing is left running and no files are
// left behind.
func startNginx(ctx context.Context, bin, backendAddr string, plan *cpuPlan) (*server, error) {
	dir, err := os.MkdirTemp("", "loadbench-nginx-*")
	if err != nil {
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(nginxConf(dir, backendAddr, port)), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("write nginx.conf: %w", err)
	}
	// -e stderr: the error log goes to our output from the start, never to
	// the system's log directory.
	cmd := exec.Command(bin, "-p", dir+"/", "-c", conf, "-e", "stderr")
	urls := map[string]string{targetNginx: "http://127.0.0.1:" + strconv.Itoa(port) + "/"}
	return startServer(ctx, "nginx", dir, cmd, urls, plan)
}

// nginxConf is the lean peer of the switchback site: the same weighted,
// sticky split of X-User-ID over two pools and two flags (split_clients,
// one hash per pool and per flag, as switchback seeds one per pool and per
// flag), the same three headers to the upstream, the X-Forwarded-* headers
// Caddy's reverse_proxy adds, and connections kept open on both sides as
// Caddy keeps them (nginx would close each after 1,000 requests). One
// process (master_process off) serves on one core, as the gateway's Go
// runtime does when pinned, and its CPU is that process's.
func nginxConf(dir, backendAddr string, port int) string {
	r := strings.NewReplacer("PREFIX", dir, "BACKEND", backendAddr, "PORT", strconv.Itoa(port))
	return r.Replace(`daemon off;
master_process off;
worker_processes 1;
pid PREFIX/nginx.pid;
error_log stderr warn;

events {
	worker_connections 1024;
}

http {
	access_log off;
	client_body_temp_path PREFIX/body;
	proxy_temp_path PREFIX/proxy;
	fastcgi_temp_path PREFIX/fastcgi;
	uwsgi_temp_path PREFIX/uwsgi;
	scgi_temp_path PREFIX/scgi;

	upstream blue {
		server BACKEND;
		keepalive 32;
		keepalive_requests 1000000;
	}
	upstream green {
		server BACKEND;
		keepalive 32;
		keepalive_requests 1000000;
	}

	split_clients "pool:${http_x_user_id}" $sb_pool {
		50% blue;
		*   green;
	}
	split_clients "f1:${http_x_user_id}" $sb_f1 {
		10% f1;
		*   "";
	}
	split_clients "f2:${http_x_user_id}" $sb_f2 {
		50% f2;
		*   "";
	}
	map "$sb_f1,$sb_f2" $sb_flags {
		"f1,f2" "f1,f2";
		"f1,"   f1;
		",f2"   f2;
		default "";
	}

	server {
		listen 127.0.0.1:PORT;
		keepalive_requests 1000000;
		location / {
			proxy_pass http://$sb_pool;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header X-Switchback-Pool $sb_pool;
			proxy_set_header X-Switchback-Flags $sb_flags;
			proxy_set_header X-Switchback-Version 1;
			proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
			proxy_set_header X-Forwarded-Proto $scheme;
			proxy_set_header X-Forwarded-Host $host;
		}
	}
}
`)
}
