#!/usr/bin/env python3
"""The person at the browser, for tests/browser.rs: clicks a button on coze-fake's
consent or device page in a headless Chromium started by tests/browser/chromium.sh,
follows the page to wherever the click leads, reads that page through the DOM and takes
a screenshot of it.

It speaks the Chrome DevTools Protocol over the browser's debugging websocket, with a
small websocket client written here on the standard library (RFC 6455: a client
handshake, masked frames out, fragmented/ping frames in), so the test needs Python 3
and Chromium and nothing from a package registry.

Usage:
    cdp.py --dir DIR --page consent|device --click approve|deny --shot PNG
           [--form-shot PNG] [--timeout SECONDS]

DIR is chromium.sh's COZE_BROWSER_DIR. Prints one JSON object on stdout:
    {"form":   {"url","title","text","fields":{id: value}},
     "result": {"url","title","text"},
     "screenshot": PNG, "form_screenshot": PNG|null}
and closes the browser. Exit 0 when the click was made and a page came back, else 1
with one line on stderr saying what did not happen.
"""

import argparse
import base64
import json
import os
import socket
import struct
import sys
import time
import urllib.parse
import urllib.request

ME = "cdp.py"


class Failed(Exception):
    pass


# ---------------------------------------------------------------- websocket (client)


class WebSocket:
    def __init__(self, url, timeout):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "ws":
            raise Failed(f"not a ws:// URL: {url}")
        self.sock = socket.create_connection((u.hostname, u.port or 80), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        path = u.path + (f"?{u.query}" if u.query else "")
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise Failed("the debugging endpoint closed the connection during the handshake")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            raise Failed(f"websocket handshake refused: {status.decode(errors='replace')}")

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise Failed("the browser closed the debugging connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_frame(self, opcode, payload):
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send(self, text):
        self._send_frame(0x1, text.encode())

    def recv(self):
        """The next whole text message (fragments joined; pings answered)."""
        message = b""
        while True:
            b0, b1 = self._read(2)
            fin, opcode = b0 & 0x80, b0 & 0x0F
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._read(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._read(8))
            if b1 & 0x80:  # servers do not mask, but be lenient
                mask = self._read(4)
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(self._read(n)))
            else:
                payload = self._read(n)
            if opcode == 0x8:
                raise Failed("the browser closed the debugging connection")
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            message += payload
            if fin:
                return message.decode()

    def close(self):
        try:
            self._send_frame(0x8, b"")
        except OSError:
            pass
        self.sock.close()


# ---------------------------------------------------------------- DevTools protocol


class Browser:
    """One connection to the browser endpoint; pages are attached with flat sessions."""

    def __init__(self, ws_url, timeout):
        self.ws = WebSocket(ws_url, timeout)
        self.next_id = 0

    def call(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise CdpError(method, reply["error"])
                return reply.get("result", {})
            # Events are not needed: the pages are polled through the DOM.

    def close(self):
        try:
            self.call("Browser.close")
        except (Failed, OSError, CdpError):
            pass
        self.ws.close()


class CdpError(Exception):
    def __init__(self, method, error):
        super().__init__(f"{method}: {error.get('message')} ({error.get('code')})")


def devtools_endpoint(profile, deadline):
    """The browser websocket URL, from the DevToolsActivePort file Chromium writes."""
    path = os.path.join(profile, "DevToolsActivePort")
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                lines = f.read().split("\n")
            if len(lines) >= 2 and lines[0].strip() and lines[1].strip():
                return f"ws://127.0.0.1:{lines[0].strip()}{lines[1].strip()}"
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    raise Failed(f"Chromium did not start: no {path} (see chromium.log beside it)")


def evaluate(b, session, expr):
    r = b.call(
        "Runtime.evaluate",
        {"expression": expr, "returnByValue": True, "awaitPromise": True},
        session,
    )
    if "exceptionDetails" in r:
        raise CdpError("Runtime.evaluate", {"message": r["exceptionDetails"].get("text")})
    return r.get("result", {}).get("value")


# One evaluation reads everything about the page, so no answer mixes two pages (a
# navigation can land between two separate evaluations).
SNAPSHOT = """((sel) => ({
  url: location.href,
  ready: document.readyState,
  title: document.title,
  text: document.body ? document.body.innerText : "",
  fields: Object.fromEntries([...document.querySelectorAll("input[id]")]
                             .map(i => [i.id, i.value])),
  has_button: !!document.querySelector(sel),
}))(%s)"""


def wait_page(b, session, want, deadline, what, button):
    """Polls the page until `want(snapshot)` holds and it is fully loaded."""
    last = None
    while time.monotonic() < deadline:
        try:
            snap = evaluate(b, session, SNAPSHOT % json.dumps(button))
        except CdpError:
            snap = None  # mid-navigation: the old context is gone, the new one not ready
        if snap:
            last = snap
            if snap["ready"] == "complete" and want(snap):
                return snap
        time.sleep(0.05)
    raise Failed(f"timed out waiting for {what}; the page was {json.dumps(last)}")


def click(b, session, selector):
    """A real click: the mouse goes to the element's centre, presses and releases."""
    box = evaluate(
        b,
        session,
        f"""(() => {{
            const e = document.querySelector({json.dumps(selector)});
            if (!e) return null;
            e.scrollIntoView({{block: "center"}});
            const r = e.getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2];
        }})()""",
    )
    if not box:
        raise Failed(f"no {selector} on the page")
    x, y = box
    for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
        b.call(
            "Input.dispatchMouseEvent",
            {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1},
            session,
        )


def screenshot(b, session, path):
    data = b.call("Page.captureScreenshot", {"format": "png"}, session)["data"]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(base64.b64decode(data))


FORM_PATHS = {"consent": "/oauth/consent", "device": "/oauth/device"}


def run(args):
    deadline = time.monotonic() + args.timeout
    endpoint = devtools_endpoint(os.path.join(args.dir, "profile"), deadline)
    b = Browser(endpoint, args.timeout)
    try:
        targets = []
        while not targets and time.monotonic() < deadline:
            targets = [
                t
                for t in b.call("Target.getTargets")["targetInfos"]
                if t["type"] == "page" and not t["url"].startswith("chrome")
            ]
            if not targets:
                time.sleep(0.05)
        if not targets:
            raise Failed("Chromium has no page open")
        session = b.call(
            "Target.attachToTarget", {"targetId": targets[0]["targetId"], "flatten": True}
        )["sessionId"]
        b.call("Page.enable", {}, session)
        b.call("Runtime.enable", {}, session)

        form_path = FORM_PATHS[args.page]
        button = f"#{args.click}"

        def on_form(s):
            path = urllib.parse.urlsplit(s["url"]).path
            return path == form_path and s["has_button"]

        form = wait_page(b, session, on_form, deadline, f"the {args.page} page ({form_path})", button)
        if args.form_shot:
            screenshot(b, session, args.form_shot)
        click(b, session, button)
        result = wait_page(
            b,
            session,
            lambda s: not s["has_button"],
            deadline,
            f"the page after clicking {button}",
            button,
        )
        screenshot(b, session, args.shot)
        out = {
            "form": {k: form[k] for k in ("url", "title", "text", "fields")},
            "result": {k: result[k] for k in ("url", "title", "text")},
            "screenshot": args.shot,
            "form_screenshot": args.form_shot,
        }
        print(json.dumps(out, ensure_ascii=False))
    finally:
        b.close()


def main():
    p = argparse.ArgumentParser(prog=ME, description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", required=True, help="chromium.sh's COZE_BROWSER_DIR")
    p.add_argument("--page", required=True, choices=sorted(FORM_PATHS))
    p.add_argument("--click", required=True, choices=["approve", "deny"])
    p.add_argument("--shot", required=True, help="PNG of the page the click leads to")
    p.add_argument("--form-shot", help="PNG of the form before the click")
    p.add_argument("--timeout", type=float, default=20.0)
    args = p.parse_args()
    try:
        run(args)
    except (Failed, CdpError, OSError) as e:
        print(f"{ME}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
