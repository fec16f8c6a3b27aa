// The node.js peer of `shootout run --peers node,node-cluster`: node's own `http` module
// answering GET / with the 13-byte "Hello, World!" from memory, keep-alive on, no logging.
//
// What it stands for: one event loop (libuv: epoll, its timers and phases) running every
// connection's JavaScript on one thread, plus libuv's thread pool for what cannot be done
// without blocking (files, DNS; GET / never reaches it) — "everything runs in parallel except
// your code". With --cluster N, node's `cluster` module forks N such workers; the primary
// accepts each connection and hands it to a worker in turn (round-robin, node's default on
// Linux), so the tree is N + 1 processes.
//
// Started by the runner (runner/peers/langs.cpp) as
//   node hello.js --port PORT [--cluster N]
// listening on 127.0.0.1:PORT in the foreground until SIGTERM or SIGINT, then exiting 0
// (a cluster primary first stops its workers). node cannot raise its own RLIMIT_NOFILE: the
// runner raises the soft limit to the hard one before it execs node.
'use strict';

const cluster = require('cluster');
const http = require('http');

function parseArgs(argv) {
  const args = {port: 0, cluster: 0};
  for (let i = 0; i < argv.length; ++i) {
    if (argv[i] === '--port') args.port = Number(argv[++i]);
    else if (argv[i] === '--cluster') args.cluster = Number(argv[++i]);
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  if (!(args.port > 0 && args.port < 65536)) throw new Error('--port PORT is required');
  if (!(args.cluster >= 0)) throw new Error('--cluster N: N >= 0');
  return args;
}

const args = parseArgs(process.argv.slice(2));
const BODY = Buffer.from('Hello, World!');
const NOT_FOUND = Buffer.from('Not Found');

function serve() {
  const server = http.createServer({noDelay: true}, (req, res) => {
    const body = req.url === '/' ? BODY : NOT_FOUND;
    res.writeHead(req.url === '/' ? 200 : 404,
                  {'Content-Type': 'text/plain', 'Content-Length': body.length});
    res.end(body);
  });
  // The other peers keep an idle connection for 120 s (node's default is 5 s: the idle hold
  // would lose its connections). No request or header timeout beyond that: a held connection
  // is idle between requests, which keepAliveTimeout alone governs.
  server.keepAliveTimeout = 120 * 1000;
  server.headersTimeout = 121 * 1000;
  server.requestTimeout = 0;
  server.maxRequestsPerSocket = 0;
  // The same backlog as the generated nginx and Apache configurations.
  server.listen({host: '127.0.0.1', port: args.port, backlog: 4096});
  return server;
}

function exitOnStop(stop) {
  for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, stop);
}

if (args.cluster > 0 && cluster.isPrimary) {
  let alive = 0;
  let stopping = false;
  for (let i = 0; i < args.cluster; ++i) {
    cluster.fork();
    ++alive;
  }
  cluster.on('exit', () => {
    if (--alive === 0 && stopping) process.exit(0);
  });
  exitOnStop(() => {
    if (stopping) return;
    stopping = true;
    if (alive === 0) process.exit(0);
    for (const id in cluster.workers) cluster.workers[id].process.kill('SIGTERM');
  });
} else {
  serve();
  // Exit at once: server.close() would wait for every keep-alive connection to go.
  exitOnStop(() => process.exit(0));
}
