// etcd-expiry: lockbench's expiry-storm shape on etcd, for tools/bench-vs-etcd.
// C workers grant N leases (TTL T s), put a key under each and keep them
// alive for D seconds; then every keepalive stops at once (the holders
// vanish, nothing is revoked) and it times until etcd has expired every one
// (their keys gone), while a probe client does Put+Delete cycles every 10 ms
// on a key of its own: their latency before and during the storm.
// Built like shared/peers' etcdload, against Debian's etcd 3.4 sources:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o etcd-expiry .
//
// Prints human lines, then one JSON line. A benchmark, not a test.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.uber.org/zap"
	"google.golang.org/grpc/grpclog"
)

var (
	endpoints = flag.String("endpoints", "", "comma-separated etcd client URLs")
	n         = flag.Int("n", 20000, "leases")
	clients   = flag.Int("c", 16, "workers (one gRPC connection each)")
	ttl       = flag.Int64("ttl", 10, "lease TTL, seconds")
	hold      = flag.Duration("d", 10*time.Second, "how long the leases are kept alive first")
	label     = flag.String("label", "", "label for the JSON line")
)

const prefix = "/etcd-expiry/"

func pcts(v []time.Duration) (p50, p99 float64) {
	if len(v) == 0 {
		return 0, 0
	}
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	at := func(q float64) float64 {
		return float64(v[int(q*float64(len(v)-1))].Microseconds()) / 1000
	}
	return at(0.50), at(0.99)
}

func main() {
	flag.Parse()
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(ioutil.Discard, ioutil.Discard, ioutil.Discard))
	eps := strings.Split(*endpoints, ",")
	cfg := func() clientv3.Config {
		lc := zap.NewProductionConfig()
		lc.Level = zap.NewAtomicLevelAt(zap.ErrorLevel) // no per-retry warnings
		return clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, LogConfig: &lc}
	}
	cs := make([]*clientv3.Client, *clients)
	for i := range cs {
		c, err := clientv3.New(cfg())
		if err != nil {
			fmt.Fprintln(os.Stderr, "etcd-expiry:", err)
			os.Exit(1)
		}
		cs[i] = c
	}
	probe, err := clientv3.New(cfg())
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd-expiry:", err)
		os.Exit(1)
	}
	bg := context.Background()
	probe.Delete(bg, prefix, clientv3.WithPrefix())

	// Grant and keep alive.
	kaCtx, stopKA := context.WithCancel(bg)
	var errs int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < *clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < *n; i += *clients {
				r, err := cs[w].Grant(bg, *ttl)
				if err == nil {
					_, err = cs[w].Put(bg, fmt.Sprintf("%s%d", prefix, i), "v", clientv3.WithLease(r.ID))
				}
				if err == nil {
					var ch <-chan *clientv3.LeaseKeepAliveResponse
					ch, err = cs[w].KeepAlive(kaCtx, r.ID)
					if err == nil {
						go func() {
							for range ch {
							}
						}()
					}
				}
				if err != nil {
					atomic.AddInt64(&errs, 1)
				}
			}
		}(w)
	}
	wg.Wait()
	grantS := time.Since(start).Seconds()
	fmt.Printf("expiry    granted %d leases with keys in %.1f s (errors %d)\n", *n, grantS, errs)

	// The probe: Put+Delete every 10 ms; phase 0 hold, 1 storm, 2 stop.
	var phase int32
	var before, during []time.Duration
	var probeErrs int64
	pdone := make(chan struct{})
	go func() {
		defer close(pdone)
		for atomic.LoadInt32(&phase) < 2 {
			ph := atomic.LoadInt32(&phase)
			ctx, cancel := context.WithTimeout(bg, 5*time.Second)
			t0 := time.Now()
			_, err := probe.Put(ctx, "/etcd-expiry-probe", "p")
			if err == nil {
				_, err = probe.Delete(ctx, "/etcd-expiry-probe")
			}
			cancel()
			dt := time.Since(t0)
			if err != nil {
				probeErrs++
			} else if ph == 0 {
				before = append(before, dt)
			} else {
				during = append(during, dt)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	time.Sleep(*hold)
	count := func() int64 {
		ctx, cancel := context.WithTimeout(bg, 5*time.Second)
		defer cancel()
		r, err := probe.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return -1
		}
		return r.Count
	}
	held := count()

	// Every holder vanishes at once.
	stopKA()
	v := time.Now()
	atomic.StoreInt32(&phase, 1)
	fmt.Printf("expiry    %d keys held; keepalives stopped; waiting for TTL %d s + expiry\n", held, *ttl)
	var first, done time.Time
	left := held
	giveUp := v.Add(time.Duration(3**ttl)*time.Second + 300*time.Second)
	for time.Now().Before(giveUp) {
		c := count()
		if c >= 0 {
			left = c
			if first.IsZero() && c < held {
				first = time.Now()
			}
			if c == 0 {
				done = time.Now()
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	atomic.StoreInt32(&phase, 2)
	<-pdone
	secs := func(t time.Time) float64 {
		if t.IsZero() {
			return -1
		}
		return t.Sub(v).Seconds()
	}
	b50, b99 := pcts(before)
	d50, d99 := pcts(during)
	expiring := -1.0
	if !first.IsZero() && !done.IsZero() {
		expiring = done.Sub(first).Seconds()
	}
	fmt.Printf("expiry    n=%d ttl=%ds: first expired after %.2f s, all after %.2f s (%.2f s of expiring); left %d\n",
		held, *ttl, secs(first), secs(done), expiring, left)
	fmt.Printf("expiry    probe put+delete hold p50=%.2fms p99=%.2fms; storm p50=%.2fms p99=%.2fms errors=%d\n",
		b50, b99, d50, d99, probeErrs)
	out, _ := json.Marshal(map[string]interface{}{
		"label": *label, "mode": "expiry-storm", "n": held, "ttl_ms": *ttl * 1000,
		"acquire_secs": grantS, "first_freed_s": secs(first), "freed_s": secs(done),
		"expiring_s": expiring, "left": left, "errors": errs, "probe_errors": probeErrs,
		"probe_hold":  map[string]float64{"p50_ms": b50, "p99_ms": b99},
		"probe_storm": map[string]float64{"p50_ms": d50, "p99_ms": d99},
	})
	fmt.Println(string(out))
	for _, c := range cs {
		c.Close()
	}
	probe.Close()
	if done.IsZero() {
		os.Exit(1)
	}
}
