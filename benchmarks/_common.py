"""Shared by benchmarks/run_all.py and benchmarks/bench_full.py (not a benchmark: run_all.py skips `_*.py`).

machine_info()          CPU model, cores, RAM, load average, date, git commit, versions, BLAS
run_measured(cmd, ...)  run one command in its own process (group); wall time, CPU time and peak RSS of that
                        process (os.wait4's rusage: the largest process of the tree that it waited for), the peak
                        RSS of the whole process tree sampled every 0.25 s (psutil, when installed), load average
                        before and after, and its output (streamed to the console and to a log file as it comes)
"""

from __future__ import annotations

import datetime as dt, os, platform, shlex, signal, subprocess, sys, threading, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / 'out'


def _cpu_model() -> str:
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gib() -> float | None:
    try:
        for line in Path('/proc/meminfo').read_text().splitlines():
            if line.startswith('MemTotal:'):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def mem_available_gib() -> float | None:
    try:
        for line in Path('/proc/meminfo').read_text().splitlines():
            if line.startswith('MemAvailable:'):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def git_state() -> dict:
    "HEAD's commit, and how many tracked / untracked files differ from it (results of a dirty tree say so)."

    def git(*a):
        r = subprocess.run(['git', *a], cwd=ROOT, capture_output=True, text=True, timeout=20)
        return r.stdout.strip() if r.returncode == 0 else None

    try:
        sha = git('rev-parse', 'HEAD')
        st = git('status', '--porcelain') or ''
    except (OSError, subprocess.SubprocessError):
        return {'commit': None}
    lines = [l for l in st.splitlines() if l.strip()]
    return {
        'commit': sha,
        'short': sha[:7] if sha else None,
        'modified': sum(not l.startswith('??') for l in lines),
        'untracked': sum(l.startswith('??') for l in lines),
    }


def machine_info() -> dict:
    info = {
        'date': dt.datetime.now().astimezone().isoformat(timespec='seconds'),
        'host_cpu': _cpu_model(),
        'cores': os.cpu_count(),
        'ram_gib': _mem_total_gib(),
        'mem_available_gib': mem_available_gib(),
        'load_average': list(os.getloadavg()),
        'platform': platform.platform(),
        'git': git_state(),
    }
    try:
        from recsys.core import machine_info, versions

        info['versions'] = versions()
        m = machine_info()  # NumPy's SIMD dispatch, BLAS kernels: what decides the last bits of a result
        info.update(blas=m['blas'], simd=m['simd'], platform_id=m['platform_id'])
    except Exception as e:  # the driver must still report when the package is broken
        info['versions'] = {'python': sys.version.split()[0], 'error': repr(e)}
    return info


def shell_join(cmd) -> str:
    "The command as one would type it from the repository root (the venv's python shown as .venv/bin/python)."
    out = []
    for c in cmd:
        c = str(c)
        p = Path(c)
        if p.is_absolute():
            try:
                c = str(p.relative_to(ROOT))
            except ValueError:
                pass
        out.append(c)
    return shlex.join(out)


def _tree_rss(proc) -> int:
    total = 0
    try:
        procs = [proc] + proc.children(recursive=True)
    except Exception:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except Exception:
            pass
    return total


def run_measured(
    cmd,
    log: Path | None = None,
    timeout: float | None = None,
    echo: bool = True,
    env: dict | None = None,
    prefix: str = '    ',
) -> dict:
    """Run `cmd` (a list) from the repository root in a new process group; return its measurements and output.
    On timeout the whole group gets SIGTERM, then SIGKILL after 10 s."""
    env = {**os.environ, 'PYTHONUNBUFFERED': '1', **(env or {})}
    if log:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
    fh = open(log, 'w') if log else None
    load0, t0 = os.getloadavg(), time.perf_counter()
    p = subprocess.Popen(
        [str(c) for c in cmd],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors='replace',
        bufsize=1,
        env=env,
        start_new_session=True,
    )
    lines: list[str] = []

    def reader():
        for line in p.stdout:
            lines.append(line)
            if fh:
                fh.write(line)
                fh.flush()
            if echo:
                sys.stdout.write(prefix + line)
                sys.stdout.flush()

    peak = {'tree': 0}
    stop = threading.Event()

    def sampler():
        try:
            import psutil
        except ImportError:
            peak['tree'] = None
            return
        try:
            pp = psutil.Process(p.pid)
        except Exception:
            return
        while not stop.is_set():
            peak['tree'] = max(peak['tree'], _tree_rss(pp))
            stop.wait(0.25)

    timed_out = {'v': False}

    def killer():
        timed_out['v'] = True
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 0)):
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                return
            time.sleep(wait)

    threads = [threading.Thread(target=reader, daemon=True), threading.Thread(target=sampler, daemon=True)]
    for t in threads:
        t.start()
    timer = threading.Timer(timeout, killer) if timeout else None
    if timer:
        timer.daemon = True
        timer.start()
    try:
        _, status, ru = os.wait4(p.pid, 0)
    except KeyboardInterrupt:
        os.killpg(p.pid, signal.SIGTERM)
        raise
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if timer:
        timer.cancel()
    stop.set()
    threads[0].join(30)
    threads[1].join(5)
    if fh:
        fh.close()
    try:  # anything of the group still alive (a daemon it left behind) goes now
        os.killpg(p.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
    return {
        'command': shell_join(cmd),
        'argv': [str(c) for c in cmd],
        'returncode': p.returncode,
        'timed_out': timed_out['v'],
        'wall_s': wall,
        'cpu_s': ru.ru_utime + ru.ru_stime,
        'user_s': ru.ru_utime,
        'sys_s': ru.ru_stime,
        'peak_rss_mib': ru.ru_maxrss / 1024,  # Linux: KiB
        'peak_tree_rss_mib': peak['tree'] / 2**20 if peak['tree'] else None,
        'load_start': list(load0),
        'load_end': list(os.getloadavg()),
        'output': ''.join(lines),
        'log': str(log) if log else None,
    }
