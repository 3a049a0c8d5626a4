#!/usr/bin/env python3
"""Screenshots of the main pages from the demo data, in headless Chromium.

    scripts/screenshots.py [--base http://127.0.0.1:8080] [--out docs/screenshots]
                           [--lang zh-CN|en] [--width 1280] [PAGE ...]

Starts `target/release/donorcare serve --demo` (or debug) on a free port unless --base is
given, signs in as the demo accounts and saves one PNG per page. Only the standard library,
Debian's chromium and chromium-driver are needed.
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import base64

PASSWORD = "demo-password-2026"
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"

# (file name, demo account, path or a callable that finds the path, full page?)
PAGES = [
    ("login", None, "/login"),
    ("coordinator-home", "demo-coordinator", "/"),
    ("cases", "demo-coordinator", "/cases"),
    ("case", "demo-coordinator", "first-case"),
    ("case-new", "demo-coordinator", "/cases/new"),
    ("case-summary", "demo-coordinator", "first-case/summary"),
    ("contact-new", "demo-coordinator", "first-case/contacts/new"),
    ("consent-new", "demo-coordinator", "first-case/consents/new"),
    ("task-new", "demo-coordinator", "first-case/tasks/new"),
    ("adverse-events", "demo-coordinator", "/adverse-events"),
    ("adverse-events-supervisor", "demo-supervisor", "/adverse-events"),
    ("tasks", "demo-coordinator", "/tasks"),
    ("outreach", "demo-coordinator", "/outreach"),
    ("outreach-message", "demo-coordinator", "first-message"),
    ("letters", "demo-coordinator", "/letters"),
    ("calendar", "demo-coordinator", "/calendar"),
    ("supervisor-home", "demo-supervisor", "/"),
    ("volunteer-home", "demo-volunteer", "/"),
    ("volunteer-visit", "demo-volunteer", "first-task"),
    ("ethics-findings", "demo-reviewer", "/ethics/findings"),
    ("ethics-finding", "demo-reviewer", "first-finding"),
    ("ethics-consent", "demo-reviewer", "first-consent"),
    ("ethics-register", "demo-reviewer", "/ethics/register"),
    ("ethics-break-glass", "demo-reviewer", "/ethics/break-glass"),
    ("ethics-break-glass-use", "demo-reviewer", "first-grant"),
    ("audit", "demo-reviewer", "/audit"),
    ("account-totp", "demo-coordinator", "/account/totp"),
    ("admin-home", "demo-admin", "/"),
    ("admin-users", "demo-admin", "/admin/users"),
    ("admin-user-new", "demo-admin", "/admin/users/new"),
    ("admin-user", "demo-admin", "first-user"),
    ("admin-plans", "demo-admin", "/admin/plans"),
    ("admin-plan", "demo-admin", "/admin/plans/organ"),
    ("admin-templates", "demo-admin", "/admin/templates"),
    ("admin-keys", "demo-admin", "/admin/keys"),
    ("reports", "demo-supervisor", "/reports"),
    ("honour-roll", "demo-coordinator", "/honour-roll"),
    ("certificate", "demo-coordinator", "first-case/certificate"),
    ("reports-year", "demo-admin", "/reports?period=2026"),
    ("memorials", "demo-coordinator", "/memorials"),
    ("memorial-new", "demo-coordinator", "/memorials/new"),
    ("memorial", "demo-coordinator", "first-memorial"),
    ("memorial-reply", "demo-coordinator", "first-invitation"),
    ("memorial-supervisor", "demo-supervisor", "first-memorial"),
    ("memorial-names-print", "demo-supervisor", "first-memorial/names/print"),
    ("family-memorials", "demo-family", "/me/memorials"),
    ("family-memorial-reply", "demo-family", "first-family-invitation"),
    ("family-home", "demo-family", "/me"),
    ("family-messages", "demo-family", "/me/messages"),
    ("family-preferences", "demo-family", "/me/preferences"),
    ("family-consents", "demo-family", "/me/consents"),
    ("family-withdraw", "demo-family", "first-withdrawal"),
    ("family-access-log", "demo-family", "/me/access-log"),
]


def first_consent_id(base, username):
    """The id of the first consent `username` may read, through the JSON API."""
    def call(method, path, body=None, token=None):
        req = urllib.request.Request(base + path, method=method,
                                     data=json.dumps(body).encode() if body else None,
                                     headers={"content-type": "application/json"})
        if token:
            req.add_header("authorization", "Bearer " + token)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)
    token = call("POST", "/api/v1/auth/login",
                 {"username": username, "password": PASSWORD})["token"]
    items = call("GET", "/api/v1/consents?limit=1", token=token)["items"]
    return items[0]["id"] if items else "none"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Driver:
    def __init__(self):
        exe = shutil.which("chromedriver") or "/usr/lib/chromium/chromedriver"
        self.port = free_port()
        self.proc = subprocess.Popen([exe, f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.profile = tempfile.mkdtemp()
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                     f"--user-data-dir={self.profile}"]}}}}
        self.session = self.call("POST", "/session", caps, root=True)["sessionId"]

    def call(self, method, path, body=None, root=False):
        url = f"http://127.0.0.1:{self.port}" + (path if root else f"/session/{self.session}{path}")
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.load(r)["value"]

    def go(self, url):
        self.call("POST", "/url", {"url": url})

    def find(self, css):
        return self.call("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def type(self, css, text):
        self.call("POST", f"/element/{self.find(css)}/value", {"text": text})

    def click(self, css):
        self.call("POST", f"/element/{self.find(css)}/click", {})

    def size(self, width, height):
        self.call("POST", "/window/rect", {"width": width, "height": height})

    def run(self, script):
        return self.call("POST", "/execute/sync", {"script": script, "args": []})

    def shot(self, path, width, full=True):
        # Tall enough for the whole page: measure, resize, capture.
        self.size(width, 900)
        if full:
            height = self.run("return document.documentElement.scrollHeight") or 900
            self.size(width, min(int(height) + 120, 6000))
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.call("GET", "/screenshot")))

    def quit(self):
        try:
            self.call("DELETE", "")
        finally:
            self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base")
    ap.add_argument("--out", default="docs/screenshots")
    ap.add_argument("--lang", default="zh-CN")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--screen", action="store_true", help="only the first screen, not the whole page")
    ap.add_argument("pages", nargs="*")
    a = ap.parse_args()
    server = None
    base = a.base
    if not base:
        built = [b for b in ["target/release/donorcare", "target/debug/donorcare"] if os.path.exists(b)]
        # The newer of the two builds, so a stale release build is never pictured.
        binary = os.path.abspath(max(built, key=os.path.getmtime)) if built else None
        if not binary:
            sys.exit("build first: cargo build --release")
        port = free_port()
        data = tempfile.mkdtemp()
        server = subprocess.Popen([binary, "serve", "--demo", "--addr", f"127.0.0.1:{port}",
                                   "--data-dir", f"{data}/data"], cwd=data,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(1.5)
    os.makedirs(a.out, exist_ok=True)
    d = Driver()
    current = "none"
    first_case = None
    try:
        for name, who, path in PAGES:
            if a.pages and name not in a.pages:
                continue
            if who != current:
                d.go(base + f"/login?lang={a.lang}")
                src = d.call("GET", "/source")
                if "/logout" in src:
                    d.click("form.signout button")
                    time.sleep(0.3)
                    d.go(base + f"/login?lang={a.lang}")
                if who:
                    d.type("#f-username", who)
                    d.type("#f-password", PASSWORD)
                    d.click("form.stack button[type=submit]")
                    time.sleep(0.5)
                current = who
            if path.startswith("first-case"):
                if not first_case:
                    d.go(base + "/cases")
                    m = re.search(r'href="/cases/([0-9a-f-]{36})"', d.call("GET", "/source"))
                    first_case = m.group(1) if m else "none"
                path = "/cases/" + first_case + path[len("first-case"):]
            # The first visit linked from the signed-in user's home page; the first message of
            # the outreach queue.
            for marker, listing, prefix in [("first-task", "/", "/tasks/"),
                                            ("first-message", "/outreach", "/outreach/"),
                                            ("first-finding", "/ethics/findings", "/ethics/findings/"),
                                            ("first-grant", "/ethics/break-glass", "/ethics/break-glass/"),
                                            ("first-user", "/admin/users", "/admin/users/"),
                                            ("first-withdrawal", "/me/consents", "/me/consents/"),
                                            ("first-memorial", "/memorials", "/memorials/"),
                                            ("first-family-invitation", "/me/memorials", "/me/memorials/")]:
                if path == marker or path.startswith(marker + "/"):
                    rest = path[len(marker):]
                    d.go(base + listing)
                    m = re.search(r'href="' + prefix + r'([0-9a-f]{8}-[0-9a-f-]{27})[/"]', d.call("GET", "/source"))
                    path = prefix + (m.group(1) if m else "none") + rest
                    if marker == "first-withdrawal":
                        path += "/withdraw"
                    if marker == "first-family-invitation":
                        path += "/reply"
            if path == "first-invitation":
                # The first family on the first event's guest list.
                d.go(base + "/memorials")
                m = re.search(r'href="/memorials/([0-9a-f-]{36})"', d.call("GET", "/source"))
                d.go(base + "/memorials/" + (m.group(1) if m else "none"))
                m = re.search(r'href="/memorial-invitations/([0-9a-f-]{36})/reply"', d.call("GET", "/source"))
                path = "/memorial-invitations/" + (m.group(1) if m else "none") + "/reply"
            if path == "first-consent":
                # Not every finding is about a recorded consent: ask the API for the newest.
                path = "/ethics/consents/" + first_consent_id(base, who)
            d.go(base + path)
            time.sleep(0.3)
            file = os.path.join(a.out, f"{name}-{a.width}-{a.lang}.png")
            d.shot(file, a.width, full=not a.screen)
            print(file)
    finally:
        d.quit()
        if server:
            server.kill()


if __name__ == "__main__":
    main()
