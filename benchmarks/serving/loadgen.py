"""A small closed-loop HTTP/1.1 load generator (standard library only), used by run.py.

N keep-alive connections on loopback, one outstanding request each (closed loop: a connection sends
its next request as soon as the previous answer is complete), driven by one thread with `selectors`
(epoll) and non-blocking sockets; requests are prebuilt bytes, answers are framed by Content-Length
(or chunked encoding). Every request's latency is measured with time.perf_counter() from the first
byte sent to the last byte received; percentiles are exact (nearest rank over all requests completed
inside the measured window).

It is a closed loop, like wrk: when the server slows down, the generator sends less (coordinated
omission), so the latency percentiles are those of the requests actually made at the achieved rate.
"""

import errno
import gc
import math
import os
import selectors
import socket
import time


class Target:
    """Where to send: host, port, and the list of prebuilt request byte strings to cycle through."""

    def __init__(self, host, port, requests):
        self.host = host
        self.port = port
        self.requests = requests


def build_request(method, host, port, path, body=None, content_type="application/json", extra_headers=()):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s:%d" % (host, port), "Connection: keep-alive"]
    for name, value in extra_headers:
        lines.append("%s: %s" % (name, value))
    if body is not None:
        lines.append("Content-Type: %s" % content_type)
        lines.append("Content-Length: %d" % len(body))
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    return head + (body or b"")


class _Conn:
    __slots__ = ("sock", "buf", "started", "index", "pending", "expect", "head_end", "chunked", "status", "closing")

    def __init__(self, sock, index):
        self.sock = sock
        self.buf = bytearray()
        self.started = 0.0
        self.index = index
        self.pending = b""
        self.reset()

    def reset(self):
        self.expect = None
        self.head_end = None
        self.chunked = False
        self.status = None
        self.closing = False


def _connect(target):
    sock = socket.create_connection((target.host, target.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock


def _chunked_end(buf, start):
    """Index just past the end of a complete chunked body starting at `start`, or None."""
    pos = start
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(bytes(buf[pos:line_end]).split(b";", 1)[0], 16)
        if size == 0:
            trailer_end = buf.find(b"\r\n\r\n", line_end)
            if trailer_end == line_end:
                return line_end + 4
            return trailer_end + 4 if trailer_end >= 0 else None
        pos = line_end + 2 + size + 2
        if pos > len(buf):
            return None


def _complete(conn):
    """Length of the complete response at the start of conn.buf, or None if more bytes are needed."""
    buf = conn.buf
    if conn.head_end is None:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        conn.head_end = end + 4
        head = bytes(buf[:end]).decode("latin-1").split("\r\n")
        conn.status = int(head[0].split(" ", 2)[1])
        for line in head[1:]:
            name, _sep, value = line.partition(":")
            name = name.strip().lower()
            value = value.strip()
            if name == "content-length":
                conn.expect = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                conn.chunked = True
            elif name == "connection" and value.lower() == "close":
                conn.closing = True
        if conn.expect is None and not conn.chunked:
            conn.expect = 0
    if conn.chunked:
        return _chunked_end(buf, conn.head_end)
    total = conn.head_end + conn.expect
    return total if len(buf) >= total else None


def run(target, connections, duration, warmup=0.0, timeout=30.0, keep_bodies=False):
    """Drive `connections` closed-loop connections for warmup + duration seconds.

    Returns a dict: requests (completed in the measured window), rps, latencies_ms (sorted), errors
    (non-2xx answers, resets, timeouts in the window), statuses, generator_cpu_s, wall_s."""
    sel = selectors.DefaultSelector()
    conns = []
    requests = target.requests
    per_conn_offset = max(1, len(requests) // max(connections, 1))
    for i in range(connections):
        conn = _Conn(_connect(target), (i * per_conn_offset) % len(requests))
        conns.append(conn)
        sel.register(conn.sock, selectors.EVENT_READ, conn)
    latencies = []
    statuses = {}
    errors = {"status": 0, "reset": 0, "timeout": 0}
    bodies = [] if keep_bodies else None
    now = time.perf_counter
    start = now()
    measure_from = start + warmup
    measure_to = measure_from + duration
    gc_was = gc.isenabled()
    gc.disable()
    cpu0 = None

    def send(conn):
        data = requests[conn.index % len(requests)]
        conn.index += 1
        conn.reset()
        del conn.buf[:]
        conn.started = now()
        try:
            sent = conn.sock.send(data)
        except BlockingIOError:
            sent = 0
        conn.pending = data[sent:]
        if conn.pending:
            sel.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)

    def reconnect(conn):
        try:
            sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()
        conn.sock = _connect(target)
        sel.register(conn.sock, selectors.EVENT_READ, conn)

    for conn in conns:
        send(conn)
    try:
        while True:
            t = now()
            if cpu0 is None and t >= measure_from:
                cpu0 = time.process_time()
            if t >= measure_to:
                break
            events = sel.select(timeout=0.05)
            for key, mask in events:
                conn = key.data
                if mask & selectors.EVENT_WRITE and conn.pending:
                    try:
                        sent = conn.sock.send(conn.pending)
                    except BlockingIOError:
                        sent = 0
                    conn.pending = conn.pending[sent:]
                    if not conn.pending:
                        sel.modify(conn.sock, selectors.EVENT_READ, conn)
                if not mask & selectors.EVENT_READ:
                    continue
                try:
                    data = conn.sock.recv(262144)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    if exc.errno not in (errno.ECONNRESET, errno.EPIPE):
                        raise
                    data = b""
                done_at = now()
                if not data:
                    if measure_from <= done_at <= measure_to:
                        errors["reset"] += 1
                    reconnect(conn)
                    send(conn)
                    continue
                conn.buf += data
                total = _complete(conn)
                if total is None:
                    continue
                if measure_from <= conn.started and done_at <= measure_to:
                    latencies.append(done_at - conn.started)
                    statuses[conn.status] = statuses.get(conn.status, 0) + 1
                    if not 200 <= conn.status < 300:
                        errors["status"] += 1
                    if bodies is not None and len(bodies) < 1000:
                        bodies.append(bytes(conn.buf[conn.head_end:total]))
                if conn.closing:
                    reconnect(conn)
                send(conn)
            t = now()
            for conn in conns:
                if t - conn.started > timeout:
                    if measure_from <= t <= measure_to:
                        errors["timeout"] += 1
                    reconnect(conn)
                    send(conn)
    finally:
        cpu1 = time.process_time()
        if gc_was:
            gc.enable()
        for conn in conns:
            try:
                sel.unregister(conn.sock)
            except (KeyError, ValueError):
                pass
            conn.sock.close()
        sel.close()
    latencies.sort()
    count = len(latencies)
    result = {
        "connections": connections,
        "duration_s": duration,
        "warmup_s": warmup,
        "requests": count,
        "rps": count / duration,
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "statuses": dict((str(k), v) for k, v in sorted(statuses.items())),
        "generator_cpu_s": cpu1 - (cpu0 if cpu0 is not None else cpu1),
        "latencies_ms": [round(v * 1000.0, 4) for v in latencies],
    }
    result["generator_cpu_share"] = result["generator_cpu_s"] / duration
    for name, q in (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("max", 1.0)):
        result[name + "_ms"] = percentile(latencies, q) * 1000.0 if count else None
    result["mean_ms"] = (sum(latencies) / count * 1000.0) if count else None
    if bodies is not None:
        result["bodies"] = bodies
    return result


def percentile(sorted_values, q):
    """Exact nearest-rank percentile of an ascending list (q in (0, 1])."""
    if not sorted_values:
        return None
    rank = max(1, int(math.ceil(q * len(sorted_values))))
    return sorted_values[rank - 1]


# ---------------------------------------------------------------------------------------------------
# a trivial HTTP server (one thread, selectors, fixed answer) to measure the generator's own capacity
# ---------------------------------------------------------------------------------------------------

TRIVIAL_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"status\":\"ok\"}\n"


def trivial_server(port_file):
    """Serve TRIVIAL_ANSWER to every complete request (headers + Content-Length body) until killed."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    listener.setblocking(False)
    with open(port_file + ".tmp", "w") as handle:
        handle.write(str(listener.getsockname()[1]))
    os.rename(port_file + ".tmp", port_file)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, None)
    buffers = {}
    while True:
        for key, _mask in sel.select():
            if key.data is None:
                client, _addr = listener.accept()
                client.setblocking(False)
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                buffers[client] = bytearray()
                sel.register(client, selectors.EVENT_READ, True)
                continue
            client = key.fileobj
            try:
                data = client.recv(262144)
            except OSError:
                data = b""
            if not data:
                sel.unregister(client)
                buffers.pop(client, None)
                client.close()
                continue
            buf = buffers[client]
            buf += data
            while True:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                length = 0
                for line in bytes(buf[:end]).split(b"\r\n")[1:]:
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if len(buf) < end + 4 + length:
                    break
                del buf[:end + 4 + length]
                client.sendall(TRIVIAL_ANSWER)


if __name__ == "__main__":
    import sys
    trivial_server(sys.argv[1])
