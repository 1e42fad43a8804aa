// etcd-read: lockbench's read shape on etcd, for tools/bench-vs-etcd. K keys
// are put first; then C workers loop Get("/etcd-read/<random mod K>") for D,
// linearizable (etcd's default: ReadIndex) or serializable (-serializable,
// the member's local state). Built like shared/peers' etcdload, against
// Debian's etcd 3.4 sources:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o etcd-read .
//
// Prints a human line, then one JSON line. A benchmark, not a test.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"math/rand"
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
	endpoints    = flag.String("endpoints", "", "comma-separated etcd client URLs")
	keys         = flag.Int("k", 1000, "keys read")
	clients      = flag.Int("c", 16, "workers (one gRPC connection each)")
	dur          = flag.Duration("d", 10*time.Second, "how long to read")
	serializable = flag.Bool("serializable", false, "serializable reads instead of linearizable")
	label        = flag.String("label", "", "label for the JSON line")
)

const prefix = "/etcd-read/"

func pct(v []time.Duration, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	return float64(v[int(q*float64(len(v)-1))].Microseconds()) / 1000
}

func main() {
	flag.Parse()
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(ioutil.Discard, ioutil.Discard, ioutil.Discard))
	eps := strings.Split(*endpoints, ",")
	cfg := func() clientv3.Config {
		lc := zap.NewProductionConfig()
		lc.Level = zap.NewAtomicLevelAt(zap.ErrorLevel)
		return clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, LogConfig: &lc}
	}
	cs := make([]*clientv3.Client, *clients)
	for i := range cs {
		c, err := clientv3.New(cfg())
		if err != nil {
			fmt.Fprintln(os.Stderr, "etcd-read:", err)
			os.Exit(1)
		}
		cs[i] = c
	}
	bg := context.Background()
	for i := 0; i < *keys; i++ {
		if _, err := cs[0].Put(bg, fmt.Sprintf("%s%d", prefix, i), "v"); err != nil {
			fmt.Fprintln(os.Stderr, "etcd-read: put:", err)
			os.Exit(1)
		}
	}
	var opts []clientv3.OpOption
	if *serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	var errs int64
	lat := make([][]time.Duration, *clients)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(*dur)
	for w := 0; w < *clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(w) + 1))
			for time.Now().Before(deadline) {
				k := fmt.Sprintf("%s%d", prefix, r.Intn(*keys))
				t0 := time.Now()
				_, err := cs[w].Get(bg, k, opts...)
				if err != nil {
					atomic.AddInt64(&errs, 1)
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}(w)
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	var all []time.Duration
	for _, v := range lat {
		all = append(all, v...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	cs[0].Delete(bg, prefix, clientv3.WithPrefix())
	mode := "linearizable"
	if *serializable {
		mode = "serializable"
	}
	ops := float64(len(all)) / secs
	fmt.Printf("read      %s c=%d k=%d n=%d err=%d %.1f ops/s p50=%.2fms p99=%.2fms\n",
		mode, *clients, *keys, len(all), errs, ops, pct(all, 0.5), pct(all, 0.99))
	b, _ := json.Marshal(map[string]interface{}{"label": *label, "mode": "read",
		"consistency": mode, "c": *clients, "k": *keys, "secs": secs, "n": len(all),
		"errors": errs, "ops_per_s": ops, "p50_ms": pct(all, 0.5), "p90_ms": pct(all, 0.9),
		"p99_ms": pct(all, 0.99), "max_ms": pct(all, 1)})
	fmt.Println(string(b))
	for _, c := range cs {
		c.Close()
	}
}
