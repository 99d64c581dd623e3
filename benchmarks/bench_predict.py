"""Prediction throughput of recsys-predict's hot path, in sessions per second (target: >= 5,000 on this machine).

A two-stage model is trained on synthetic data without tuning the blend (64 factors, as recsys-train; few
iterations, since they do not change prediction cost); the test sessions are replicated under new session ids to
`--sessions` sessions, and each run times the whole path from an Arrow table of test events to the top-5
partnumbers of every session, for both last stages of the same model, side by side in the same run:
two-stage (read_sessions -> candidate sources + the blend's candidates -> the first cut -> features of the rows it
keeps -> LightGBM -> top 5) and the linear blend alone (read_sessions -> candidates -> blend -> top 5). The script
prints the median of `--repeats` runs in wall time and in process CPU time (steadier when other work shares the
machine), their ratio, and, once each: the two-stage model without its first cut (`cut_n=0`, every candidate
through the features and LightGBM) with the share of recommendations the cut leaves unchanged, and the time to
write and validate predictions_3.json.

    python benchmarks/bench_predict.py                   # small synthetic, 20,000 sessions, 5 repeats
    python benchmarks/bench_predict.py --scale tiny      # seconds: a smoke test
    python benchmarks/bench_predict.py --min-rate 5000   # exit 1 if the median wall rate is below 5,000 sessions/s
"""

from __future__ import annotations

import argparse, os, statistics, sys, tempfile, time
from pathlib import Path

os.environ.setdefault('RECSYS_QUIET', '1')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--scale', default='small', help='synthetic scale (tiny | small | full)')
    p.add_argument('--seed', type=int, default=42)
    p.add_argument(
        '--sessions', type=int, default=20_000, help='sessions per run (test sessions replicated under new ids)'
    )
    p.add_argument('--factors', type=int, default=64)
    p.add_argument('--iterations', type=int, default=3)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--min-rate', type=float, default=None, help='exit 1 if the median wall rate is below this')
    a = p.parse_args(argv)

    import numpy as np, pyarrow as pa, pyarrow.compute as pc
    from recsys.core import blas_info
    from recsys.ingest import load_dataset
    from recsys.recommend import predict_file, read_sessions, recommend_sessions, train_model
    from recsys.ranker import rank_sessions

    ds = load_dataset('synthetic', scale=a.scale, seed=a.seed)
    t = time.perf_counter()
    model = train_model(ds, tune=False, factors=a.factors, iterations=a.iterations, seed=a.seed, show_progress=False)
    assert model.ranker is not None
    train_s = time.perf_counter() - t
    test = ds.test
    n0 = pc.count_distinct(test['session_id']).as_py()
    reps = -(-a.sessions // n0)
    step = int(pc.max(test['session_id']).as_py()) + 1
    big = pa.concat_tables(
        [test.set_column(0, 'session_id', pc.add(test['session_id'], k * step)) for k in range(reps)]
    )
    ids = np.unique(big['session_id'].to_numpy())[: a.sessions]
    big = big.filter(pa.array(np.isin(big['session_id'].to_numpy(), ids)))
    n = len(ids)
    paths = {
        'two-stage': lambda: rank_sessions(model, model.sources, model.ranker, read_sessions(big), big),
        'linear blend': lambda: recommend_sessions(model, read_sessions(big)),
    }
    for f in paths.values():
        f()  # warm-up (imports, caches)
    times = {k: ([], []) for k in paths}
    for _ in range(a.repeats):  # interleaved: both see the same machine
        for k, f in paths.items():
            t, c = time.perf_counter(), time.process_time()
            recs = f()
            times[k][0].append(time.perf_counter() - t)
            times[k][1].append(time.process_time() - c)
            assert recs.shape == (n, 5)
    wall, cpu = times['two-stage']
    t = time.perf_counter()
    full = rank_sessions(model, model.sources, model.ranker, read_sessions(big), big, cut_n=0)
    t_full = time.perf_counter() - t
    same = float((full == paths['two-stage']()).mean())
    with tempfile.TemporaryDirectory() as d:
        tf = Path(d) / 'test.parquet'
        import pyarrow.parquet as pq

        pq.write_table(big, tf)
        s = predict_file(model, tf, Path(d) / 'predictions_3.json')
    w, c = statistics.median(wall), statistics.median(cpu)
    wl, cl = statistics.median(times['linear blend'][0]), statistics.median(times['linear blend'][1])
    print(f'data: synthetic {a.scale} seed {a.seed}: {model}; trained in {train_s:.1f} s (no tuning)')
    print(f'blas: {blas_info()}  cores: {os.cpu_count()}  load average: {os.getloadavg()[0]:.1f}')
    print(f'sessions per run: {n:,} ({len(big):,} rows)')
    print(f'wall s per run: {", ".join(f"{x:.3f}" for x in wall)}')
    print(f'median: {w:.3f} s wall -> {n / w:,.0f} sessions/s; {c:.3f} s CPU -> {n / c:,.0f} sessions/s of CPU time')
    print(
        f'linear blend alone: median {wl:.3f} s wall -> {n / wl:,.0f} sessions/s; '
        f'{cl:.3f} s CPU -> {n / cl:,.0f} sessions/s '
        f'of CPU time; two-stage / linear: {w / wl:.1f}x the wall time'
    )
    cut = model.ranker.first_cut
    print(
        f'first cut: {cut!r}; without it (every candidate through the features and LightGBM, once): {t_full:.3f} s '
        f'-> {n / t_full:,.0f} sessions/s; {same:.1%} of the recommended slots are the same with and without it'
    )
    print(
        f'predictions_3.json end to end (read test file, recommend, write, validate): {s["seconds"]:.2f} s '
        f'-> {n / s["seconds"]:,.0f} sessions/s'
    )
    if a.min_rate is not None and n / w < a.min_rate:
        print(f'FAIL: median {n / w:,.0f} sessions/s < {a.min_rate:,.0f}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
