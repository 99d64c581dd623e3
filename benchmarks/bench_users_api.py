"""Users API harvester throughput: `recsys.users_api.harvest` against `recsys-users-serve` on loopback, no faults.

The server runs in its own process (as the real API would); the harvester runs here, with its checkpoint (fsync'd
JSON lines) and its parquet outputs, several times from scratch. For scale, the same run times a naive client like
the original project's (a thread pool of blocking httpx requests, no checkpoint) and a sequential one.
The issue's target: >= 2,000 users/s with 64 requests in flight on the project's 2-core machine.

    .venv/bin/python benchmarks/bench_users_api.py [--users 20000] [--repeats 5] [--concurrency 64]
"""

import argparse, json, os, re, resource, statistics, subprocess, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from recsys.users_api import demo_users, harvest, parse_user


def start_server(data_dir, n_users):
    cmd = [
        sys.executable,
        '-c',
        'from recsys.users_api import serve_cli; serve_cli()',
        '--data',
        str(data_dir),
        '--port',
        '0',
        '--limit',
        str(n_users),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.search(r'http://127\.0\.0\.1:\d+', line)
    if not m:
        proc.kill()
        raise SystemExit(f'server did not start: {line!r}')
    return proc, m.group(0)


def proc_cpu_s(pid):
    "CPU seconds (user + system) used so far by process `pid` (Linux /proc), or None."
    try:
        f = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf('SC_CLK_TCK')
    except (OSError, IndexError, ValueError):
        return None


def self_cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def naive_threaded(url, ids, threads):
    "The original project's shape: a thread pool of blocking requests, results kept in memory."
    with httpx.Client(limits=httpx.Limits(max_connections=threads, max_keepalive_connections=threads), timeout=10) as c:

        def one(i):
            return parse_user(c.get(f'{url}/users/{i}').content, i)

        t = time.perf_counter()
        with ThreadPoolExecutor(threads) as ex:
            out = list(ex.map(one, ids))
        return len(out) / (time.perf_counter() - t)


def naive_sequential(url, ids):
    with httpx.Client(timeout=10) as c:
        t = time.perf_counter()
        out = [parse_user(c.get(f'{url}/users/{i}').content, i) for i in ids]
        return len(out) / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--users', type=int, default=20000)
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--concurrency', type=int, default=64)
    ap.add_argument('--naive-users', type=int, default=3000)
    ap.add_argument('--json', type=Path, help='also write the figures to this JSON file')
    a = ap.parse_args()

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        demo_users(a.users, seed=42).to_parquet(d / 'users_entries.parquet')
        proc, url = start_server(d, a.users)
        try:
            harvest(url, d / 'warmup.parquet', ids=range(1, 501), concurrency=a.concurrency, show_progress=False)
            rates, totals, cpu_client, cpu_server = [], [], [], []
            for k in range(a.repeats):
                c0, s0 = self_cpu_s(), proc_cpu_s(proc.pid)
                r = harvest(url, d / f'run{k}.parquet', concurrency=a.concurrency, show_progress=False)
                c1, s1 = self_cpu_s(), proc_cpu_s(proc.pid)
                assert r.ok and r.fetched == a.users, r.summary()
                rates.append(r.users_per_s)
                totals.append(r.fetched / r.elapsed_s)
                cpu_client.append((c1 - c0) / r.fetched * 1e6)
                if s0 is not None:
                    cpu_server.append((s1 - s0) / r.fetched * 1e6)
                print(
                    f'  harvest run {k + 1}: {r.users_per_s:,.0f} users/s fetching, '
                    f'{r.fetched / r.elapsed_s:,.0f} users/s with outputs ({r.elapsed_s:.2f} s); CPU per user: '
                    f'client {cpu_client[-1]:.0f} us, server {cpu_server[-1] if cpu_server else float("nan"):.0f} us; '
                    f'load average {os.getloadavg()[0]:.1f}',
                    flush=True,
                )
            ids = list(range(1, a.naive_users + 1))
            thr = statistics.median(naive_threaded(url, ids, a.concurrency) for _ in range(3))
            seq = naive_sequential(url, ids[: a.naive_users // 3])
        finally:
            proc.terminate()
            proc.wait(10)

    med, med_total = statistics.median(rates), statistics.median(totals)
    med_cpu = statistics.median(cpu_client)
    print(
        f'harvest (aiohttp, {a.concurrency} in flight, checkpoint + parquet): median {med:,.0f} users/s '
        f'fetching, {med_total:,.0f} users/s end to end, over {a.repeats} runs of {a.users:,} users '
        f'({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end)'
    )
    print(
        f'harvester CPU: median {med_cpu:.0f} us per user (client process, outputs included) '
        f'-> at most {1e6 / med_cpu:,.0f} users/s per free core; the server used '
        f'{statistics.median(cpu_server) if cpu_server else float("nan"):.0f} us per user'
    )
    print(
        f'naive threaded client (httpx, {a.concurrency} threads, no checkpoint): {thr:,.0f} users/s '
        f'-> harvester is {med / thr:.1f}x faster'
    )
    print(f'naive sequential client (httpx, 1 connection): {seq:,.0f} users/s -> harvester is {med / seq:.1f}x faster')
    print(f'target >= 2,000 users/s: {"met" if med >= 2000 else "NOT met"}')
    if a.json:
        a.json.write_text(
            json.dumps(
                {
                    'users': a.users,
                    'repeats': a.repeats,
                    'concurrency': a.concurrency,
                    'harvest_users_per_s': rates,
                    'median_users_per_s': med,
                    'median_end_to_end_users_per_s': med_total,
                    'client_cpu_us_per_user': cpu_client,
                    'server_cpu_us_per_user': cpu_server,
                    'loadavg': os.getloadavg(),
                    'naive_threaded_users_per_s': thr,
                    'naive_sequential_users_per_s': seq,
                },
                indent=2,
            )
        )
    return 0 if med >= 2000 else 1


if __name__ == '__main__':
    sys.exit(main())
