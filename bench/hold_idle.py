#!/usr/bin/env python3
# Holds N idle keep-alive connections to a running server, each having sent GET / and read its
# answer, and prints the server's PSS per connection: the 100,000-connection check of
# `serve --workers` (docs/RESULTS.md, issue 21 B). P client processes open N/P connections each,
# each from its own source address 127.0.0.(2+i): one source address has about 28,000 ephemeral
# ports towards one server port, and one process may hold 20,000 descriptors here.
#
#   build/shootout serve --model evented --workers 6 --idle-timeout 600000 --port 0 &
#   python3 bench/hold_idle.py SERVER_PID PORT 100000 6
#
# PSS: the sum of Pss over the server's process tree (/proc/PID/smaps_rollup), before the
# connections and 1 s after the last is answered; the TCP line of /proc/net/sockstat then.
# Keep --idle-timeout above the time it takes to open them (the default 120 s closes the first
# ones before the measurement on a loaded host).
import os, socket, sys, time, multiprocessing as mp

def tree(root):
    kids = {}
    for d in os.listdir('/proc'):
        if d.isdigit():
            try:
                f = open(f'/proc/{d}/stat').read()
                ppid = int(f[f.rindex(')') + 2:].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except Exception:
                pass
    out, todo = [], [root]
    while todo:
        p = todo.pop(); out.append(p); todo += kids.get(p, [])
    return out

def pss_kb(root):
    total = 0
    for p in tree(root):
        for line in open(f'/proc/{p}/smaps_rollup'):
            if line.startswith('Pss:'):
                total += int(line.split()[1])
    return total

def client(i, k, port, ready, done):
    import resource
    resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
    socks, ok = [], 0
    for _ in range(k):
        s = socket.socket()
        s.bind((f'127.0.0.{2 + i}', 0))
        s.connect(('127.0.0.1', port))
        s.sendall(b'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
        data = b''
        while not data.endswith(b'Hello, World!'):
            chunk = s.recv(4096)
            if not chunk: break
            data += chunk
        ok += data.startswith(b'HTTP/1.1 200')
        socks.append(s)
    ready.put(ok)
    done.wait()

if __name__ == '__main__':
    pid, port, n, procs = map(int, sys.argv[1:5])
    before = pss_kb(pid)
    ready, done = mp.Queue(), mp.Event()
    ps = [mp.Process(target=client, args=(i, n // procs, port, ready, done)) for i in range(procs)]
    t0 = time.time()
    for p in ps: p.start()
    ok = sum(ready.get() for _ in ps)
    time.sleep(1)
    after = pss_kb(pid)
    sockstat = open('/proc/net/sockstat').read().split('\n')[1]
    nproc = len(tree(pid))
    print(f'answered {ok} of {n // procs * procs} in {time.time() - t0:.1f} s; server processes {nproc}; '
          f'PSS {before} KiB -> {after} KiB: {(after - before) * 1024 / ok:.0f} B per connection; {sockstat}')
    done.set()
    for p in ps: p.join()
