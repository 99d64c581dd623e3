"""CI's check of the main job (`make reports`), read back from the run folder it wrote.

    .venv/bin/python .ci/check_reports.py reports

1. Every job of the newest run is ok or not applicable (a failed, skipped or missing job fails CI), and the run has
   its index page.
2. On the default run (synthetic, small, seed 42) the 06 report's headline figures hold. This is where the
   two-stage model is pinned: at small scale (1,000 test sessions) it moves little across CPUs, where on tiny data
   (40 sessions) one session ranked differently moves it by ~0.01 (tests/test_functional.py). The bands come from
   benchmarks/cpu_spread.py (benchmarks/CPU_SPREAD.md): 06 at small, seed 42, under this CPU's kernels and an
   AVX2-only imitation (OpenBLAS Haswell, NumPy without AVX-512), with 1 and 2 BLAS threads, gave the two-stage
   model 0.3582-0.3616 on all carts and 0.0707-0.0743 on future carts: SPREAD; the band is twice that. Every other
   figure of the table did not move at all, and keeps STABLE_TOL. What the band catches: serving the linear blend
   instead of the ranker (-0.016 on all carts, and the ordering below). What it cannot: dropping one candidate
   source or feature group moves small's figure by at most 0.005 (the 06 report's ablation), inside the cross-CPU
   spread of one seed; those are measured paired, within one run, by the report's ablation table.
   Issue 26 (the source registry with V-SKNN, 50 candidates per source, 8 ALS iterations) moved the centres to the
   figures its run measured here (two-stage 0.3587 / 0.0733, linear blend 0.3447 / 0.0689); then its first cut,
   V-SKNN made opt-in and the 60-tree ranker without early stopping moved the two-stage centre to 0.3590 / 0.0736.
   The band widths are the spread measured before (see CPU_SPREAD.md for the new model's tiny-scale spread).

Exit status 1, with each problem named, when anything fails.
"""

import json, sys
from pathlib import Path

OK = {'ok', 'cached', 'not applicable'}
TWO = 'two-stage: candidates + LightGBM ranker'
SPREAD = {'ndcg@5': 0.0034, 'ndcg@5 future': 0.0036}  # max - min over 2 CPUs x 1-2 threads (see the docstring)
STABLE_TOL = 0.0005  # figures with no measured spread across CPUs or threads
PINS = {  # 06_recommend on synthetic small, seed 42: (method, metric) -> (value, tolerance)
    (TWO, 'ndcg@5'): (0.3590, 2 * SPREAD['ndcg@5']),
    (TWO, 'ndcg@5 future'): (0.0736, 2 * SPREAD['ndcg@5 future']),
    ('linear blend (tuned)', 'ndcg@5'): (0.3447, STABLE_TOL),  # 8 ALS iterations since issue 26 (0.3427 with 15)
    ('linear blend (tuned)', 'ndcg@5 future'): (0.0689, STABLE_TOL),
    ('random order of shown items', 'ndcg@5'): (0.2796, STABLE_TOL),
    ('shown items by views then recency', 'ndcg@5'): (0.2772, STABLE_TOL),
    ('best order of shown items', 'ndcg@5'): (0.3458, STABLE_TOL),
    ('global popularity', 'ndcg@5'): (0.0349, STABLE_TOL),
    ('oracle (planted truth)', 'ndcg@5'): (0.5733, STABLE_TOL),
    ('OTTO co-visitation recipe (no learning)', 'ndcg@5'): (0.3408, STABLE_TOL),  # the peer: no BLAS, no learning
    ('OTTO co-visitation recipe (no learning)', 'ndcg@5 future'): (0.0675, STABLE_TOL),
}


def check_jobs(run_dir: Path, run: dict) -> list[str]:
    bad = [f'{r["key"]}: {r["status"]}' for r in run['records'] if r['status'] not in OK]
    if not run['records']:
        bad.append('the run has no jobs')
    if not (run_dir / 'index.html').exists():
        bad.append('index.html is missing')
    return bad


def check_headline(run_dir: Path, run: dict) -> list[str]:
    "The pins and the ordering model >= linear blend >= best in-session baseline, on the default run only."
    if (run.get('dataset'), run.get('scale'), run.get('seed')) != ('synthetic', 'small', 42):
        return []
    rec = next((r for r in run['records'] if r['key'].startswith('06_recommend')), None)
    if rec is None:
        return ['06_recommend is not in the run']
    table = json.loads((run_dir / rec['dir'] / 'results.json').read_text()).get('table') or {}
    bad = []
    for (method, metric), (want, tol) in PINS.items():
        got = (table.get(method) or {}).get(metric)
        if got is None or abs(got - want) > tol:
            bad.append(f'06 {method} | {metric}: {got} is not within {want} ± {tol:.4f}')
    ndcg = {m: r.get('ndcg@5', float('nan')) for m, r in table.items()}
    best_in = max(ndcg.get('random order of shown items', 0), ndcg.get('shown items by views then recency', 0))
    if not ndcg.get(TWO, 0) >= ndcg.get('linear blend (tuned)', 1) >= best_in:
        bad.append(f'06 ordering broken: model >= linear blend >= best in-session baseline does not hold: {ndcg}')
    return bad


def check(reports_dir: Path) -> list[str]:
    runs = sorted(reports_dir.glob('*/run.json'), key=lambda p: p.stat().st_mtime)
    if not runs:
        return [f'no run.json under {reports_dir}/: make reports did not record a run']
    run_dir, run = runs[-1].parent, json.loads(runs[-1].read_text())
    print(f'{run_dir}: {run["counts"]} in {run.get("wall_s")} s')
    return check_jobs(run_dir, run) + check_headline(run_dir, run)


if __name__ == '__main__':
    problems = check(Path(sys.argv[1] if len(sys.argv) > 1 else 'reports'))
    for p in problems:
        print(f'FAIL: {p}', file=sys.stderr)
    print('main job checked: every job ok, headline figures within their measured bands' if not problems else '')
    sys.exit(1 if problems else 0)
