"""`make bench`'s replay server: answers with streams recorded from coze-fake, from
memory, at socket speed, so that a long case measures the client and not the server.

    replay.py [--chunk=N] ROUTE...   ROUTE is METHOD:PATH=FILE, e.g. POST:/v3/chat=/tmp/chat.sse

Prints {"base_url": "http://127.0.0.1:PORT"} on stdout once it listens; serves until its
stdin is closed. Every request to a ROUTE (the query string is ignored, the request body
is read and dropped) gets 200, `Content-Type: text/event-stream`, and FILE's bytes sent
chunked: in HTTP chunks of N bytes (a server or proxy that buffers its writes; bench.py
asks for 16 KiB), or, without --chunk or with N 0, one chunk per SSE event, as a server
that flushes each event does (the Coze API does). The whole response is encoded once, when the server starts, and each
request is answered with one `sendall`: the server's cost per request is the kernel's
copy. Anything else gets 404 with a body saying which route was missing, so a case that
asks for more than was recorded fails loudly rather than measuring an error path.
Connections are kept alive (a batch reuses one); one thread per connection.
"""
import json
import socket
import sys
import threading


def encode_chunked(body, size):
    """FILE's bytes as HTTP chunks of `size` bytes, or one per SSE event (an event ends
    with a blank line) when `size` is 0."""
    parts = []
    start = 0
    while start < len(body):
        if size:
            end = min(start + size, len(body))
        else:
            end = body.find(b"\n\n", start)
            end = len(body) if end < 0 else end + 2
        piece = body[start:end]
        parts.append(b"%x\r\n%s\r\n" % (len(piece), piece))
        start = end
    parts.append(b"0\r\n\r\n")
    return b"".join(parts)


def read_request(conn, buf):
    """One request from `conn` (bytes already read in `buf`): (method, path, rest of
    buf), or None at the end of the connection."""
    while b"\r\n\r\n" not in buf:
        more = conn.recv(65536)
        if not more:
            return None
        buf += more
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(buf) < length:
        more = conn.recv(65536)
        if not more:
            return None
        buf += more
    return method, target.split("?", 1)[0], buf[length:]


def serve(conn, routes):
    buf = b""
    with conn:
        while True:
            req = read_request(conn, buf)
            if req is None:
                return
            method, path, buf = req
            answer = routes.get((method, path))
            if answer is None:
                msg = f"replay.py: no recording for {method} {path}\n".encode()
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(msg), msg))
                continue
            conn.sendall(answer)


def main():
    routes = {}
    args = sys.argv[1:]
    size = 0
    if args and args[0].startswith("--chunk="):
        size = int(args.pop(0).split("=", 1)[1])
    for arg in args:
        route, _, path = arg.partition("=")
        method, _, url_path = route.partition(":")
        with open(path, "rb") as f:
            body = f.read()
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"X-Tt-Logid: replay\r\nTransfer-Encoding: chunked\r\n\r\n")
        routes[(method, url_path)] = head + encode_chunked(body, size)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    print(json.dumps({"base_url": "http://127.0.0.1:%d" % listener.getsockname()[1]}), flush=True)

    def accept():
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=serve, args=(conn, routes), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    sys.stdin.read()  # until the harness closes our stdin


main()
