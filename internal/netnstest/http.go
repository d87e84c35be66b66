package netnstest

import (
	"context"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/kflcap/kflcap/internal/netnsrun"
)

// HTTPGet fetches url with a connection made inside namespace ns ("" for
// the caller's), as a client there would: an agent's /readyz or /status on
// that namespace's loopback, without starting curl for each poll. It
// returns the status code and the body.
func HTTPGet(ns, url string) (int, string, error) {
	path := ""
	if ns != "" {
		path = "/var/run/netns/" + ns
	}
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			// One connection per call: nothing outlives it (the test may
			// delete the namespace next).
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
				err = netnsrun.Do(path, func() error {
					var d net.Dialer
					c, err = d.DialContext(ctx, network, addr)
					return err
				})
				return c, err
			},
		},
	}
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
