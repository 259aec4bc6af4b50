package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// A load is row 8's HTTP client: workers goroutines GET one URL over
// keep-alive connections on loopback until requests answers have come or
// limit has passed, whichever is first.
type load struct {
	url      string
	want     string // the body every answer must have
	workers  int
	requests int
	limit    time.Duration
}

// A loadRun is what one load measured.
type loadRun struct {
	answers int           // requests answered with 200 and the wanted body
	dials   int           // connections the client opened
	took    time.Duration // from the workers' start to the last one's end
}

func (r loadRun) perSecond() float64 { return float64(r.answers) / r.took.Seconds() }

// run does the load once. Each run has its own transport, so no run
// inherits another's connections. The first failed request ends the run
// and is its error: a rate with failures in it compares nothing.
func (l load) run() (loadRun, error) {
	var dials atomic.Int64
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		Proxy: nil, // loopback only, whatever the environment says
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return dialer.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: l.workers,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}

	var (
		claimed  atomic.Int64 // requests handed out, at most l.requests
		answered atomic.Int64
		once     sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	stop := make(chan struct{})
	fail := func(err error) {
		once.Do(func() {
			firstErr = err
			close(stop)
		})
	}
	start := time.Now()
	deadline := start.Add(l.limit)
	for range l.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for claimed.Add(1) <= int64(l.requests) && time.Now().Before(deadline) {
				select {
				case <-stop:
					return
				default:
				}
				if err := get(client, l.url, l.want); err != nil {
					fail(fmt.Errorf("%w (after %d answers)", err, answered.Load()))
					return
				}
				answered.Add(1)
			}
		}()
	}
	wg.Wait()
	r := loadRun{answers: int(answered.Load()), dials: int(dials.Load()), took: time.Since(start)}
	if firstErr != nil {
		return r, firstErr
	}
	if r.answers == 0 {
		return r, fmt.Errorf("GET %s: no answer within %s", l.url, l.limit)
	}
	return r, nil
}

// get asks url once and reads the whole answer, which lets the transport
// keep the connection when the server does.
func get(client *http.Client, url, want string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: read: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK || string(body) != want {
		return fmt.Errorf("GET %s: %s %.60q, want 200 %q", url, resp.Status, body, want)
	}
	return nil
}
