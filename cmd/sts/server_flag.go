package main

import (
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/keybridge/sts/internal/config"
	"github.com/keybridge/sts/internal/setup"
	"github.com/spf13/cobra"
)

// defaultServer is where `sts serve` listens with no configuration.
const defaultServer = "http://" + config.DefaultAddr

// serverFlag is --server, the one flag of every command that talks to a
// running server. Its default, in order: $STS_SERVER; the issuer `sts
// serve` recorded in this command's data (--data-dir or --database-url),
// so that the CLI follows a server started with --issuer or --addr;
// http://127.0.0.1:8080.
type serverFlag struct {
	urls []string
}

func (s *serverFlag) register(cmd *cobra.Command, several bool) {
	usage := "base URL of the running server (default $STS_SERVER, else the issuer `sts serve` recorded in this data, else " + defaultServer + ")"
	if several {
		usage += "; repeat for several instances"
	}
	cmd.Flags().StringArrayVar(&s.urls, "server", nil, usage)
}

// all returns the base URLs, without a trailing slash.
func (s *serverFlag) all(cmd *cobra.Command) ([]string, error) {
	urls := s.urls
	if len(urls) == 0 {
		if v := os.Getenv("STS_SERVER"); v != "" {
			urls = []string{v}
		} else if c, err := dataConfig(cmd); err == nil {
			if iss := setup.RememberedIssuer(cmd.Context(), c); iss != "" {
				urls = []string{iss}
			}
		}
	}
	if len(urls) == 0 {
		urls = []string{defaultServer}
	}
	out := make([]string, 0, len(urls))
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("--server %q is not an http(s) base URL such as %s", raw, defaultServer)
		}
		out = append(out, strings.TrimRight(raw, "/"))
	}
	return out, nil
}

// one returns the only base URL.
func (s *serverFlag) one(cmd *cobra.Command) (string, error) {
	urls, err := s.all(cmd)
	if err != nil {
		return "", err
	}
	if len(urls) > 1 {
		return "", fmt.Errorf("--server is given %d times; this command talks to one server", len(urls))
	}
	return urls[0], nil
}
