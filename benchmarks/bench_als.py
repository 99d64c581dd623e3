"""ALSModel against calling implicit directly on the same CSR: the wrapper's overhead (target <= 5 %).

Both engines fit the same matrix with the same hyperparameters, seed and thread count, in one process,
alternating which goes first, `--repeats` times; the script reports median seconds and their ratio for two
like-for-like conditions:

  engine     training loss off on both sides (implicit's default): what the wrapper itself costs
  with-loss  calculate_training_loss=True on both sides (ALSModel's default): the same, loss included

and, from the same runs, what ALSModel's default (loss on) costs against implicit's default (loss off).
Each side times construction + fit, with BLAS limited to one thread and progress bars off on both, in wall
time and in process CPU time (steadier when other work shares the machine; exact with --threads 1).

    python benchmarks/bench_als.py                 # 1M events, 50k x 10k, 64 factors, 10 iterations, 5 repeats
    python benchmarks/bench_als.py --tiny          # seconds: a smoke test (tests/test_als.py runs it)
    python benchmarks/bench_als.py --max-overhead 0.05   # exit 1 if the like-for-like median ratio exceeds 1.05
"""

from __future__ import annotations

import argparse, json, os, statistics, sys, time
from pathlib import Path

os.environ.setdefault('RECSYS_QUIET', '1')

import numpy as np


def _implicit(C, a, loss):
    from threadpoolctl import threadpool_limits
    from implicit.cpu.als import AlternatingLeastSquares

    t, c = time.perf_counter(), time.process_time()
    with threadpool_limits(limits=1, user_api='blas'):
        m = AlternatingLeastSquares(
            factors=a.factors,
            regularization=a.regularization,
            iterations=a.iterations,
            calculate_training_loss=loss,
            num_threads=a.threads,
            random_state=a.seed,
        )
        m.fit(C, show_progress=False)
    return time.perf_counter() - t, time.process_time() - c, m.user_factors


def _recsys(C, a, loss):
    from recsys.als import ALSModel

    t, c = time.perf_counter(), time.process_time()
    m = ALSModel(
        factors=a.factors,
        regularization=a.regularization,
        iterations=a.iterations,
        calculate_training_loss=loss,
        num_threads=a.threads,
        seed=a.seed,
    ).fit(C, show_progress=False)
    return time.perf_counter() - t, time.process_time() - c, m.user_factors


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--users', type=int, default=50_000)
    p.add_argument('--items', type=int, default=10_000)
    p.add_argument(
        '--events', type=int, default=1_030_000, help='events drawn; ~1M distinct cells at the default sizes'
    )
    p.add_argument('--factors', type=int, default=64)
    p.add_argument('--regularization', type=float, default=0.05)
    p.add_argument('--iterations', type=int, default=10)
    p.add_argument('--threads', type=int, default=0, help='OpenMP threads for both engines (0 = all cores)')
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--seed', type=int, default=42)
    p.add_argument(
        '--tiny', action='store_true', help='2k x 500, 20k events, 16 factors, 2 repeats, 1 thread: a smoke test'
    )
    p.add_argument('--max-overhead', type=float, default=None, help='exit 1 if a like-for-like ratio exceeds 1 + this')
    p.add_argument(
        '--clock',
        choices=('wall', 'cpu'),
        default='wall',
        help='what --max-overhead checks: wall time, or process CPU time (steadier on a shared machine)',
    )
    p.add_argument('--out', type=Path, default=None, help='also write the results as JSON here')
    a = p.parse_args(argv)
    if a.tiny:
        a.users, a.items, a.events, a.repeats, a.factors, a.threads = 2_000, 500, 20_000, 2, 16, 1

    from recsys.als import planted_events
    from recsys.core import blas_info, versions

    C, _ = planted_events(a.users, a.items, a.events, repeat=0.0, zipf=0.5, target=0.0, seed=a.seed)
    print(
        f'matrix: {C.shape[0]:,} x {C.shape[1]:,}, {C.nnz:,} stored cells; factors={a.factors}, '
        f'iterations={a.iterations}, threads={a.threads or os.cpu_count()}, repeats={a.repeats}',
        flush=True,
    )

    # warm-up (imports, first-touch) and the like-for-like check: identical factors from both
    Xi, Xr = _implicit(C, a, False)[-1], _recsys(C, a, False)[-1]
    if not np.array_equal(Xi, Xr):
        sys.exit('ALSModel and implicit disagree on the same input: not like with like')

    keys = [(cond, eng) for cond in ('engine', 'with-loss') for eng in ('implicit', 'recsys')]
    wall, cpu = {k: [] for k in keys}, {k: [] for k in keys}
    for r in range(a.repeats):
        for cond, loss in (('engine', False), ('with-loss', True)):
            order = (('implicit', _implicit), ('recsys', _recsys))
            for eng, fn in order if r % 2 == 0 else order[::-1]:
                w, c, _ = fn(C, a, loss)
                wall[(cond, eng)].append(w)
                cpu[(cond, eng)].append(c)
        print(
            f'  repeat {r + 1}/{a.repeats}: ' + ', '.join(f'{c}/{e} {wall[(c, e)][-1]:.2f}s' for c, e in keys),
            flush=True,
        )

    # the wrapper's fixed cost, free of the solver's noise: the same calls with zero iterations (validation,
    # initial factors, thread limits, progress bar) — what ALSModel adds is the difference
    zero = {'implicit': [], 'recsys': []}
    a0 = argparse.Namespace(**{**vars(a), 'iterations': 0})
    for r in range(21):
        for eng, fn in (
            (('implicit', _implicit), ('recsys', _recsys))
            if r % 2 == 0
            else (('recsys', _recsys), ('implicit', _implicit))
        ):
            zero[eng].append(fn(C, a0, True)[0])
    fixed = {k: statistics.median(v) for k, v in zero.items()}
    added = fixed['recsys'] - fixed['implicit']

    rows = []
    for clock, t in (('wall', wall), ('cpu', cpu)):
        med = {k: statistics.median(v) for k, v in t.items()}
        for cond in ('engine', 'with-loss'):
            pair = [r / i for r, i in zip(t[(cond, 'recsys')], t[(cond, 'implicit')])]
            rows.append(
                {
                    'clock': clock,
                    'condition': cond,
                    'implicit_s': med[(cond, 'implicit')],
                    'recsys_s': med[(cond, 'recsys')],
                    'ratio_of_medians': med[(cond, 'recsys')] / med[(cond, 'implicit')],
                    'median_pair_ratio': statistics.median(pair),
                    'default_vs_default': med[('with-loss', 'recsys')] / med[('engine', 'implicit')],
                }
            )
    print(f"\n{'clock':<5} {'condition':<10} {'implicit s':>11} {'ALSModel s':>11} {'ratio':>7} {'pairwise':>9}")
    for r in rows:
        print(
            f"{r['clock']:<5} {r['condition']:<10} {r['implicit_s']:>11.3f} {r['recsys_s']:>11.3f} "
            f"{r['ratio_of_medians']:>7.3f} {r['median_pair_ratio']:>9.3f}"
        )
    full = statistics.median(wall[('engine', 'implicit')])
    print(
        f"fixed cost (0 iterations): implicit {fixed['implicit'] * 1000:.1f} ms, "
        f"ALSModel {fixed['recsys'] * 1000:.1f} ms: "
        f"ALSModel adds {added * 1000:+.1f} ms = {added / full:+.2%} of one {a.iterations}-iteration fit"
    )
    for clock in ('wall', 'cpu'):
        print(
            f'{clock}: ALSModel default (loss on) vs implicit default (loss off): '
            f"{next(r['default_vs_default'] for r in rows if r['clock'] == clock):.3f}"
            '  (the loss is one more pass per iteration)'
        )
    res = {
        'params': vars(a) | {'out': str(a.out) if a.out else None},
        'nnz': int(C.nnz),
        'rows': rows,
        'wall_s': {f'{c}/{e}': v for (c, e), v in wall.items()},
        'cpu_s': {f'{c}/{e}': v for (c, e), v in cpu.items()},
        'fixed_cost_s': fixed,
        'fixed_added_s': added,
        'fixed_added_fraction': added / full,
        'load_average': os.getloadavg(),
        'blas': blas_info(),
        'versions': versions(),
        'cpus': os.cpu_count(),
    }
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=2))
    if a.max_overhead is not None:
        worst = max(r['ratio_of_medians'] for r in rows if r['clock'] == a.clock)
        if worst > 1 + a.max_overhead:
            print(f'FAIL: overhead {worst - 1:.1%} > {a.max_overhead:.0%}')
            return 1
        print(f'OK: overhead {worst - 1:+.1%} <= {a.max_overhead:.0%}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
