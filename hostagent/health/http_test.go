package health

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHTTP_Check(t *testing.T) {
	t.Parallel()
	var redirectFollowed atomic.Bool
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/fail", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok2", http.StatusFound) })
	mux.HandleFunc("/ok2", func(w http.ResponseWriter, _ *http.Request) { redirectFollowed.Store(true) })
	mux.HandleFunc("/slow", func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: no handler outlives the test

	closed := httptest.NewServer(mux)
	closed.Close()

	cases := []struct {
		name    string
		url     string
		wantErr string
	}{
		{name: "200", url: srv.URL + "/ok"},
		{name: "204", url: srv.URL + "/nocontent"},
		{name: "500", url: srv.URL + "/fail", wantErr: "status 500 Internal Server Error"},
		{name: "404", url: srv.URL + "/missing", wantErr: "status 404 Not Found"},
		{name: "redirect not followed", url: srv.URL + "/moved", wantErr: "status 302 Found"},
		{name: "timeout", url: srv.URL + "/slow", wantErr: "deadline exceeded"},
		{name: "closed server", url: closed.URL + "/ok", wantErr: "connection refused"},
		{name: "bad url", url: "http://[::1", wantErr: "build request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := NewHTTP(tc.url, 200*time.Millisecond)
			require.Equal(t, "http GET "+tc.url, c.String())
			err := c.Check(context.Background())
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
	require.False(t, redirectFollowed.Load())
}

func TestHTTP_CallerContext(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, NewHTTP(srv.URL, time.Minute).Check(ctx), context.Canceled)
}
