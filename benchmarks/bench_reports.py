"""Wall time of a report run with --jobs 2 against --jobs 1 (recsys.reports).

By default on fixture notebooks shaped like the pipeline (an ingest step, then a model swept over 4 configurations,
each busy for --work seconds of CPU besides its kernel start); with --real on the project's own notebooks
(`recsys-reports --dataset synthetic --scale SCALE`). Each setting runs --repeat times with --force, alternating.

    .venv/bin/python benchmarks/bench_reports.py [--work 2] [--repeat 1] [--real --scale tiny]
"""

import argparse, json, os, statistics, tempfile, time
from pathlib import Path

from recsys import reports as R


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        '--work', type=float, default=2.0, help='CPU seconds each fixture notebook spends besides its kernel start'
    )
    ap.add_argument('--repeat', type=int, default=1)
    ap.add_argument('--real', action='store_true', help="time the project's notebooks instead of fixtures")
    ap.add_argument('--scale', default='tiny')
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix='bench-reports-'))
    if a.real:
        kw = dict(dataset='synthetic', scale=a.scale, seed=42)
        what = f"project notebooks ({', '.join(R.discover_notebooks())}), synthetic {a.scale}"
    else:
        R.demo_notebooks(tmp / 'nbs', fail=False, work_s=a.work)
        kw = dict(
            dataset='synthetic',
            scale='tiny',
            seed=42,
            nbs_dir=tmp / 'nbs',
            grid={'04_als': {'factors': [4, 8, 16, 32]}},
            prepare=False,
        )
        what = f'fixtures: 01_ingest then 04_als x 4 configurations, {a.work:g} CPU s each'
    times = {1: [], 2: []}
    for _ in range(a.repeat):
        for j in (1, 2):
            t = time.perf_counter()
            s = R.run_reports(jobs=j, out=tmp / f'run-j{j}', force=True, screenshot=False, show_progress=False, **kw)
            times[j].append(time.perf_counter() - t)
            print(f"jobs={j}: {times[j][-1]:.1f} s  ({s['counts']})", flush=True)
    m1, m2 = statistics.median(times[1]), statistics.median(times[2])
    print(
        json.dumps(
            {
                'benchmark': 'reports --jobs 2 vs --jobs 1',
                'what': what,
                'cores': os.cpu_count(),
                'load_avg_1min': round(os.getloadavg()[0], 2),
                'jobs1_s': round(m1, 1),
                'jobs2_s': round(m2, 1),
                'speedup': round(m1 / m2, 2),
            }
        )
    )


if __name__ == '__main__':
    main()
