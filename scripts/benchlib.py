"""Helpers shared by scripts/bench and scripts/bench-http: free ports, process-tree CPU and PSS
from /proc, the test feed, and the servers under test (MistController, nginx with the RTMP module)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The binaries under test (MIST_BENCH_BIN_DIR overrides, e.g. target/debug for a quick look).
BIN_DIR = os.environ.get("MIST_BENCH_BIN_DIR") or os.path.join(ROOT, "target", "release")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def tree(pid):
    """pid and all its descendants."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except OSError:
            pass
    return total / CLK_TCK


def cpu_seconds_ns(pids):
    """On-CPU time of the processes' live threads from /proc/PID/task/TID/schedstat (ns, not
    clock ticks: a 10 ms tick is too coarse for short measurements of light load). Threads that
    exit between two readings drop out of the sum, so use it on processes without short-lived
    threads."""
    total = 0
    for p in pids:
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tids:
            try:
                with open(f"/proc/{p}/task/{t}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total / 1e9


def pss_kib(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def ensure_tools(extra=(), nginx=True):
    """Installs what is missing; `extra` is (command, Debian package) pairs; `nginx`: nginx with
    the RTMP module too."""
    missing = [pkg for cmd, pkg in extra if not shutil.which(cmd)]
    if not shutil.which("ffmpeg"):
        missing.append("ffmpeg")
    if nginx and not shutil.which("nginx") and not os.path.exists("/usr/sbin/nginx"):
        missing.append("nginx")
    if nginx and not os.path.exists("/usr/lib/nginx/modules/ngx_rtmp_module.so"):
        missing.append("libnginx-mod-rtmp")
    if missing:
        log("bench: installing", " ".join(missing))
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env,
                       stdout=subprocess.DEVNULL)


def make_feed(work):
    feed = os.path.join(work, "feed.flv")
    subprocess.run([
        "ffmpeg", "-v", "error", "-y",
        "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
        "-t", "60", "-c:v", "libx264", "-preset", "veryfast", "-g", "50",
        "-b:v", "900k", "-maxrate", "1000k", "-bufsize", "1000k", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "96k", "-f", "flv", feed], check=True)
    return feed


class Server:
    name = ""
    proc = None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Nginx(Server):
    name = "nginx-rtmp"

    def __init__(self, work):
        self.port = free_port()
        prefix = os.path.join(work, "nginx")
        os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 65536;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 65536; }}
rtmp {{
    server {{
        listen 127.0.0.1:{self.port};
        chunk_size 4096;
        application live {{ live on; }}
    }}
}}
""")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([nginx, "-p", prefix, "-c", conf])
        wait_port(self.port)
        self.publish_url = f"rtmp://127.0.0.1:{self.port}/live/bench"
        self.play_url = f"rtmp://127.0.0.1:{self.port}/live/bench"


class Mist(Server):
    name = "mist-rs"

    def __init__(self, work, http=None, more=(), bin_dir=None):
        """`http`: extra protocol entries; when given, an HTTP listener is added (self.http_port).
        `more`: more protocol entries (e.g. RTSP). `bin_dir`: the binaries (default BIN_DIR)."""
        self.port = free_port()
        api = self.api_port = free_port()
        # Every viewer comes from 127.0.0.1: no per-address cap.
        protocols = [{"connector": "RTMP", "port": self.port, "interface": "127.0.0.1", "max_per_ip": 0}]
        if http is not None:
            self.http_port = free_port()
            protocols.append({"connector": "HTTP", "port": self.http_port, "interface": "127.0.0.1"})
            protocols.extend(http)
        protocols.extend(more)
        shm = os.path.join(work, "shm")
        os.makedirs(shm, exist_ok=True)
        conf = os.path.join(work, "mist.conf")
        with open(conf, "w") as f:
            json.dump({
                "config": {"controller": {"port": api, "interface": "127.0.0.1"},
                           "protocols": protocols},
                "streams": {"live": {"name": "live", "source": "push://"}},
            }, f)
        # Its own control socket: a controller already running on the machine (a service, a
        # test) must not make the benchmark's controller refuse to start.
        env = dict(os.environ, MIST_SHM_DIR=shm, MIST_CONTROL=os.path.join(work, "control.sock"))
        binary = os.path.join(bin_dir or BIN_DIR, "MistController")
        self.proc = subprocess.Popen([binary, "-c", conf, "-g", os.environ.get("MIST_BENCH_LOG", "2")], env=env,
                                     stdin=subprocess.DEVNULL)
        wait_port(self.port)
        if http is not None:
            wait_port(self.http_port)
        self.publish_url = f"rtmp://127.0.0.1:{self.port}/live/live+bench"
        self.play_url = f"rtmp://127.0.0.1:{self.port}/play/live+bench"


def measure(server, feed, steps, duration, loadgen=None):
    """Publishes `feed` to `server`, then per step runs a load generator for N viewers and returns one
    row per step. `loadgen`: the generator's argv up to `--viewers` (default: rtmp_load on play_url)."""
    if loadgen is None:
        loadgen = [os.path.join(ROOT, "target", "release", "examples", "rtmp_load"), "--url", server.play_url]
    publisher = subprocess.Popen(["ffmpeg", "-v", "error", "-re", "-stream_loop", "-1", "-i", feed,
                                  "-c", "copy", "-f", "flv", server.publish_url],
                                 stdin=subprocess.DEVNULL)
    rows = []
    try:
        time.sleep(3)
        base_pss = pss_kib(tree(server.proc.pid))
        for n in steps:
            pids = tree(server.proc.pid)
            cpu0 = cpu_seconds(pids)
            load = subprocess.Popen(
                [*loadgen, "--viewers", str(n), "--duration", str(duration)],
                stdout=subprocess.PIPE, text=True)
            time.sleep(duration * 0.7)
            pss = pss_kib(tree(server.proc.pid))
            out, _ = load.communicate()
            cpu = cpu_seconds(tree(server.proc.pid)) - cpu0
            res = json.loads(out)
            mb = res["bytes"] / 1e6
            rows.append({
                "viewers": n,
                "stall_free": res["stall_free"],
                "connected": res["connected"],
                "cpu_s_per_mb": cpu / mb if mb else float("inf"),
                "pss_kib_per_viewer": max(0, pss - base_pss) / n,
                "ttff_ms": res["ttff_ms_median"],
                "mbit_s": res["bytes"] * 8 / 1e6 / duration,
                # The load generator's own CPU: it must stay well below one core, or the client,
                # not the server, is what saturates.
                "loadgen_cpu_pct": 100 * res.get("loadgen_cpu_s", float("nan")) / duration,
            })
            log(f"{server.name} {rows[-1]}")
            if publisher.poll() is not None:
                raise RuntimeError(f"publisher to {server.name} died")
            time.sleep(2)
    finally:
        publisher.terminate()
        publisher.wait()
    return rows
