// The Go peer of `shootout run --peers go,go-2`: net/http answering GET / with the 13-byte
// "Hello, World!" from memory, keep-alive on, no logging.
//
// What it stands for: M:N scheduling. net/http runs a goroutine per connection, written as
// blocking code; the runtime multiplexes the goroutines over GOMAXPROCS OS threads and parks a
// goroutine whose read would block on the netpoller (epoll), waking it when the socket is
// ready. The runner sets GOMAXPROCS in the environment (1 for peer `go`, beside our single-loop
// models; 2 for `go-2`) and says which in the point's notes.
//
// Built by scripts/build-peers.sh (the CMake target `peers`) into build/peers/go-hello, and
// started by the runner (runner/peers/langs.cpp) as
//   GOMAXPROCS=N go-hello --port PORT
// listening on 127.0.0.1:PORT in the foreground until SIGTERM or SIGINT, then exiting 0.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

var (
	body        = []byte("Hello, World!")
	contentType = []string{"text/plain"}
)

func hello(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	// Assigned, not Set: Set would canonicalize the key and allocate a new slice per request.
	w.Header()["Content-Type"] = contentType
	w.Write(body) // small and written once: net/http adds Content-Length
}

// raiseNofile lifts the soft descriptor limit to the hard one, so 10,000 connections fit.
// (Go 1.19's os package does the same at start-up; done here so it is not left to a version.)
func raiseNofile() {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
}

func main() {
	port := flag.Int("port", 0, "TCP port on 127.0.0.1")
	flag.Parse()
	if *port <= 0 || *port > 65535 {
		fmt.Fprintln(os.Stderr, "usage: go-hello --port PORT")
		os.Exit(2)
	}
	raiseNofile()

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		// At once: Shutdown would wait for every keep-alive connection to go idle and close.
		os.Exit(0)
	}()

	// net.Listen takes its backlog from net.core.somaxconn (4096 on current kernels), as large
	// as the other peers' 4096.
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(hello),
		// The other peers keep an idle connection 120 s; no read or write deadline on a request.
		IdleTimeout: 120 * time.Second,
	}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(1)
	}
}
