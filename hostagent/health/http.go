package health

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// httpCheck is healthy when a GET returns a 2xx status.
type httpCheck struct {
	url     string
	timeout time.Duration
	client  *http.Client
}

var _ Check = (*httpCheck)(nil)

// NewHTTP returns a check that GETs url and is healthy on a 2xx status.
// It follows no redirects (a 3xx fails), ignores the body, opens a new
// connection each time so that a server which stopped accepting is
// noticed, and never goes through a proxy from the environment.
func NewHTTP(url string, timeout time.Duration) Check {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Proxy = nil
	transport.DisableKeepAlives = true
	return &httpCheck{
		url:     url,
		timeout: timeout,
		client: &http.Client{
			Transport: transport,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
}

// Check sends the request.
func (c *httpCheck) Check(ctx context.Context) error {
	ctx, cancel := withTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return err // already says "Get \"url\": ..."
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: status %s", c.url, resp.Status)
	}
	return nil
}

func (c *httpCheck) String() string { return "http GET " + c.url }
