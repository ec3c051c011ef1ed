// etcd-watch: raftkv-bench's `watch` workload against etcd 3.4, for figures
// side by side (scripts/bench.sh --watch builds it in GOPATH mode against
// Debian's golang-etcd-server-dev, as scripts/etcd-bench-tool.sh builds
// etcd's own tool; nothing fetched).
//
// --watchers watchers over --watch-conns connections, one gRPC watch stream
// per connection (raw etcdserverpb, so each connection has one reader, as
// raftkv-bench's), each watcher on one key of --key-space keys; --total puts
// from --clients goroutines paced to --rate puts/s; --stalled-conns more
// connections whose streams create the same watchers and never read (gRPC
// flow control then stops etcd's sends to them). Each put's value starts
// with its sequence number, so an event names its put; the latency is from
// just before the put was sent to the event's arrival at the reader. Prints
// one JSON line with raftkv-bench's field names; ops_per_sec is events
// delivered per second, errors counts events that never came and failed
// puts.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/clientv3"
	pb "go.etcd.io/etcd/etcdserver/etcdserverpb"
	"google.golang.org/grpc"
)

var (
	endpoints  = flag.String("endpoints", "127.0.0.1:2379", "endpoints, comma-separated")
	watchers   = flag.Int("watchers", 10000, "watchers in all")
	watchConns = flag.Int("watch-conns", 100, "connections (one watch stream each) the watchers are spread over")
	stalled    = flag.Int("stalled-conns", 0, "extra connections with the same watchers that never read")
	keySpace   = flag.Int("key-space", 10000, "keys watched and put")
	total      = flag.Int("total", 10000, "puts")
	clients    = flag.Int("clients", 10, "put goroutines")
	putConns   = flag.Int("conns", 2, "put connections")
	rate       = flag.Int("rate", 1000, "puts per second in all (0: as fast as they go)")
	valSize    = flag.Int("val-size", 8, "value size (at least 8)")
	timeout    = flag.Duration("timeout", 10*time.Second, "give up on missing events after this long without one")
)

func die(f string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "etcd-watch: "+f+"\n", a...)
	os.Exit(1)
}

func key(k int) string { return fmt.Sprintf("wb/%08d", k) }

// watchersOf: how many watchers see a put to key k (watcher w watches key
// w mod keySpace).
func watchersOf(k int) int64 {
	base := *watchers / *keySpace
	if k < *watchers%*keySpace {
		base++
	}
	return int64(base)
}

type shared struct {
	epoch     time.Time
	sentAt    []int64 // nanoseconds since epoch just before put i was sent; 0: not yet
	expected  int64
	delivered int64
	lastEvent int64
	mu        sync.Mutex
	lat       []time.Duration
}

// openStream creates the watchers `ids` on one new connection's stream and,
// if wait, waits until all are created. A stream that is never read (!wait)
// gets gRPC's smallest windows, so etcd's sends to it stop once 64 KiB are
// unread instead of after a window grown to megabytes.
func openStream(ep string, ids []int, wait bool) (*clientv3.Client, pb.Watch_WatchClient) {
	cfg := clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second}
	if !wait {
		cfg.DialOptions = []grpc.DialOption{grpc.WithInitialWindowSize(65535), grpc.WithInitialConnWindowSize(65535)}
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		die("connecting to %s: %v", ep, err)
	}
	stream, err := pb.NewWatchClient(c.ActiveConnection()).Watch(context.Background())
	if err != nil {
		die("opening a watch stream: %v", err)
	}
	for _, w := range ids {
		create := &pb.WatchCreateRequest{Key: []byte(key(w % *keySpace))}
		if err := stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: create}}); err != nil {
			die("creating a watcher: %v", err)
		}
	}
	for created := 0; wait && created < len(ids); {
		r, err := stream.Recv()
		if err != nil {
			die("waiting for creates: %v", err)
		}
		if r.Canceled {
			die("watch refused: %s", r.CancelReason)
		}
		if r.Created {
			created++
		}
	}
	return c, stream
}

// read times every event of the stream until it ends.
func read(stream pb.Watch_WatchClient, sh *shared) {
	var lat []time.Duration
	defer func() {
		sh.mu.Lock()
		sh.lat = append(sh.lat, lat...)
		sh.mu.Unlock()
	}()
	for {
		r, err := stream.Recv()
		if err != nil {
			return
		}
		now := time.Since(sh.epoch).Nanoseconds()
		got := int64(0)
		for _, ev := range r.Events {
			if ev.Kv == nil || len(ev.Kv.Value) < 8 {
				continue
			}
			seq := binary.BigEndian.Uint64(ev.Kv.Value[:8])
			if seq < uint64(len(sh.sentAt)) {
				if sent := atomic.LoadInt64(&sh.sentAt[seq]); sent != 0 {
					lat = append(lat, time.Duration(now-sent))
				}
			}
			got++
		}
		if got > 0 {
			atomic.AddInt64(&sh.delivered, got)
			atomic.StoreInt64(&sh.lastEvent, now)
		}
	}
}

func main() {
	flag.Parse()
	eps := strings.Split(*endpoints, ",")
	if *valSize < 8 {
		*valSize = 8
	}
	sh := &shared{epoch: time.Now(), sentAt: make([]int64, *total)}
	var readers sync.WaitGroup
	var streams []pb.Watch_WatchClient
	var conns []*clientv3.Client
	for c := 0; c < *watchConns; c++ {
		var ids []int
		for w := c; w < *watchers; w += *watchConns {
			ids = append(ids, w)
		}
		cl, s := openStream(eps[c%len(eps)], ids, true)
		conns = append(conns, cl)
		streams = append(streams, s)
		readers.Add(1)
		go func() { defer readers.Done(); read(s, sh) }()
	}
	for c := 0; c < *stalled; c++ {
		ids := make([]int, *watchers)
		for w := range ids {
			ids[w] = w
		}
		cl, _ := openStream(eps[c%len(eps)], ids, false)
		conns = append(conns, cl)
	}
	var putters []*clientv3.Client
	for c := 0; c < *putConns; c++ {
		cl, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second})
		if err != nil {
			die("connecting: %v", err)
		}
		putters = append(putters, cl)
	}
	var next, putErrors int64 = -1, 0
	started := time.Now()
	var puts sync.WaitGroup
	for g := 0; g < *clients; g++ {
		puts.Add(1)
		go func(g int) {
			defer puts.Done()
			rng := rand.New(rand.NewSource(int64(g) + 1))
			cl := putters[g%len(putters)]
			for {
				i := int(atomic.AddInt64(&next, 1))
				if i >= *total {
					return
				}
				if *rate > 0 {
					if wait := time.Until(started.Add(time.Duration(float64(i) / float64(*rate) * float64(time.Second)))); wait > 0 {
						time.Sleep(wait)
					}
				}
				k := rng.Intn(*keySpace)
				v := make([]byte, *valSize)
				binary.BigEndian.PutUint64(v, uint64(i))
				for j := 8; j < len(v); j++ {
					v[j] = 'v'
				}
				atomic.AddInt64(&sh.expected, watchersOf(k))
				atomic.StoreInt64(&sh.sentAt[i], time.Since(sh.epoch).Nanoseconds())
				ctx, cancel := context.WithTimeout(context.Background(), *timeout)
				_, err := cl.Put(ctx, key(k), string(v))
				cancel()
				if err != nil {
					atomic.AddInt64(&putErrors, 1)
					atomic.AddInt64(&sh.expected, -watchersOf(k))
				}
			}
		}(g)
	}
	puts.Wait()
	atomic.StoreInt64(&sh.lastEvent, time.Since(sh.epoch).Nanoseconds())
	for atomic.LoadInt64(&sh.delivered) < atomic.LoadInt64(&sh.expected) {
		if time.Duration(time.Since(sh.epoch).Nanoseconds()-atomic.LoadInt64(&sh.lastEvent)) > *timeout {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(started)
	for _, s := range streams {
		_ = s.CloseSend()
	}
	for _, c := range append(conns, putters...) {
		_ = c.Close()
	}
	readers.Wait()
	lat := sh.lat
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	at := func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000
	}
	missing := atomic.LoadInt64(&sh.expected) - atomic.LoadInt64(&sh.delivered)
	if missing < 0 {
		missing = 0
	}
	line := map[string]interface{}{
		"op": "watch", "conns": *watchConns + *stalled, "clients": *watchers, "total": *total,
		"secs": elapsed.Seconds(), "ops_per_sec": float64(atomic.LoadInt64(&sh.delivered)) / elapsed.Seconds(),
		"p50_ms": at(0.5), "p90_ms": at(0.9), "p99_ms": at(0.99), "p999_ms": at(0.999), "max_ms": at(1),
		"errors": missing + putErrors, "server": "etcd",
	}
	b, _ := json.Marshal(line)
	fmt.Println(string(b))
}
