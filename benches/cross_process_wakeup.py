#!/usr/bin/env python3
"""Cross-process wake-up latency: a server (BIN serve) runs a script that
adds "Welcomed" when "Trial" is added; N separate `BIN import users` runs
each tag one new user "Trial"; the latency is the server-side time from the
import's change to the script's follow-up change (tag_changes.at).

Usage: python3 benches/cross_process_wakeup.py BINARY DATABASE_URL PORT N
(a fresh database: `sqlite:///tmp/x.db?mode=rwc` or an empty PostgreSQL
database; needs the `sqlite3` or `psql` client to read the timestamps)."""
import os, subprocess, sys, time, tempfile, datetime, signal
bin_, url, port, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
env = dict(os.environ, TAGSMITH_LOG="warn")
server = subprocess.Popen([bin_, "serve", "--database-url", url, "--bind", f"127.0.0.1:{port}"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
time.sleep(3)
d = tempfile.mkdtemp()
open(f"{d}/w.rhai", "w").write('fn on_tag_added(event) {\n    if event.tag == "Trial" { event.subject.add_tag("Welcomed"); }\n}\n')
subprocess.run([bin_, "script", "upload", f"{d}/w.rhai", "--database-url", url], check=True, env=env, capture_output=True)
time.sleep(1.5)
for i in range(n):
    open(f"{d}/u.csv", "w").write(f"email,tags\nxp{i}@example.com,Trial\n")
    subprocess.run([bin_, "import", "users", f"{d}/u.csv", "--database-url", url], check=True, env=env, capture_output=True)
    time.sleep(0.2)
time.sleep(2)
q = "SELECT p.at, c.at FROM tag_changes c JOIN tag_changes p ON c.cause_id = p.id"
if url.startswith("sqlite"):
    out = subprocess.run(["sqlite3", url.split("://",1)[1].split("?")[0], q], capture_output=True, text=True).stdout
    rows = [l.split("|") for l in out.strip().splitlines()]
else:
    out = subprocess.run(["psql", url, "-At", "-F", "|", "-c", q], capture_output=True, text=True).stdout
    rows = [l.split("|") for l in out.strip().splitlines()]
def parse(s):
    s = s.strip().replace(" UTC", "").replace("+00:00", "").replace("+00", "").replace("T", " ")
    return datetime.datetime.fromisoformat(s)
lat = sorted((parse(c) - parse(p)).total_seconds() * 1000 for p, c in rows)
server.send_signal(signal.SIGINT)
server.wait(timeout=10)
def pct(p): return lat[min(len(lat)-1, max(0, int(len(lat)*p + 0.999) - 1))]
print(f"{len(lat)} of {n} followed; p50 {pct(0.5):.1f} ms, p90 {pct(0.9):.1f} ms, p99 {pct(0.99):.1f} ms, max {lat[-1]:.1f} ms")
