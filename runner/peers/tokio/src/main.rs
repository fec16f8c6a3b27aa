// The Tokio peer of `shootout run --peers tokio,tokio-mt`: hyper 0.14's HTTP/1.1 server on
// Tokio, answering GET / with the 13-byte "Hello, World!" from memory, keep-alive on, no
// logging.
//
// What it stands for: a reactor plus an executor. Tokio's reactor (mio over epoll) turns socket
// readiness into wake-ups of futures; its executor polls the woken futures — a connection is a
// task, a state machine compiled from async code, with no stack of its own. Two runtimes, one
// flag:
//   --runtime current-thread  one thread is reactor and executor (peer `tokio`, beside our
//                             evented model)
//   --runtime multi-thread    --workers N threads, each with its run queue, stealing tasks
//                             from each other, sharing the reactor (peer `tokio-mt`, N = 2)
//
// Built by scripts/build-peers.sh (the CMake target `peers`) into build/peers/tokio-hello, and
// started by the runner (runner/peers/langs.cpp) as
//   tokio-hello --port PORT --runtime current-thread|multi-thread [--workers N]
// listening on 127.0.0.1:PORT in the foreground until SIGTERM or SIGINT, then exiting 0.
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::exit;

use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::AddrIncoming;
use hyper::service::{make_service_fn, service_fn};
use hyper::{Body, Request, Response, Server, StatusCode};
use tokio::signal::unix::{signal, SignalKind};

struct Args {
    port: u16,
    multi_thread: bool,
    workers: usize,
}

fn usage(why: &str) -> ! {
    eprintln!("tokio-hello: {why}");
    eprintln!("usage: tokio-hello --port PORT --runtime current-thread|multi-thread [--workers N]");
    exit(2)
}

fn parse_args() -> Args {
    let mut args = Args { port: 0, multi_thread: false, workers: 2 };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage(&format!("{a} needs a value")));
        match a.as_str() {
            "--port" => args.port = value().parse().unwrap_or_else(|_| usage("bad --port")),
            "--runtime" => match value().as_str() {
                "current-thread" => args.multi_thread = false,
                "multi-thread" => args.multi_thread = true,
                other => usage(&format!("unknown runtime {other}")),
            },
            "--workers" => {
                args.workers = value().parse().unwrap_or_else(|_| usage("bad --workers"));
                if args.workers == 0 {
                    usage("--workers must be at least 1");
                }
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if args.port == 0 {
        usage("--port PORT is required");
    }
    args
}

// The soft descriptor limit up to the hard one, so 10,000 connections fit.
fn raise_nofile() {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 && rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
    }
}

async fn hello(req: Request<Body>) -> Result<Response<Body>, Infallible> {
    // A &'static body: no copy per response; hyper adds Content-Length.
    let (status, body) = if req.uri().path() == "/" {
        (StatusCode::OK, "Hello, World!")
    } else {
        (StatusCode::NOT_FOUND, "Not Found")
    };
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(res)
}

async fn serve(port: u16) {
    // Exit at once on SIGTERM/SIGINT: a graceful shutdown would wait on keep-alive connections.
    // (A task per signal: tokio::select! would need the macros feature and its proc macros.)
    for kind in [SignalKind::terminate(), SignalKind::interrupt()] {
        let mut sig = signal(kind).expect("signal handler");
        tokio::spawn(async move {
            sig.recv().await;
            exit(0);
        });
    }

    // The same backlog as the generated nginx and Apache configurations (std's bind uses 128).
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    if let Err(e) = socket.bind(addr) {
        eprintln!("tokio-hello: bind 127.0.0.1:{port}: {e}");
        exit(1);
    }
    let listener = socket.listen(4096).expect("listen");
    let mut incoming = AddrIncoming::from_listener(listener).expect("listener");
    incoming.set_nodelay(true);

    let make = make_service_fn(|_| async { Ok::<_, Infallible>(service_fn(hello)) });
    // Keep-alive is hyper's default and has no idle timeout: a held connection stays.
    let server = Server::builder(incoming).http1_only(true).http1_keepalive(true).serve(make);
    if let Err(e) = server.await {
        eprintln!("tokio-hello: {e}");
        exit(1);
    }
}

fn main() {
    let args = parse_args();
    raise_nofile();
    let runtime = if args.multi_thread {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.workers)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    };
    // Spawned, not run by block_on itself: block_on polls its future on the main thread, which
    // in the multi-thread runtime is not one of the workers; as a task the accept loop runs on
    // them like every connection does.
    let runtime = runtime.expect("tokio runtime");
    let server = runtime.spawn(serve(args.port));
    if let Err(e) = runtime.block_on(server) {
        eprintln!("tokio-hello: {e}");
        exit(1);
    }
}
