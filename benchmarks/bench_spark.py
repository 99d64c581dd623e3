"""Spark MLlib ALS against implicit (recsys.als.ALSModel) on one machine: the same matrix, rank and iterations.

Both engines train on the confidence of one design (default: the seed design) over the same synthetic
Inditex-format data; Spark's input comes from its own pipeline (read parquet, aggregate, confidence, to_spark's
ratings, cached and counted before the clock starts) and is checked to be the same matrix (same pair count, same
sum of c - 1). Spark runs in local mode with as many threads as implicit (`--threads`, default 2 = this machine's
cores). Each repeat times both fits, alternating which goes first; the script prints the median seconds and the
ratio Spark / implicit for implicit's default solver (conjugate gradient) and for its exact one (Cholesky, what
Spark does), and the median of the per-repeat ratios (steadier when other jobs share the machine: both fits of one
repeat see similar load). It also times one end-to-end run per engine: parquet -> aggregated -> confidence -> fitted.

    python benchmarks/bench_spark.py          # small synthetic (~0.9M pairs), rank 64, 10 iterations, 3 repeats
    python benchmarks/bench_spark.py --tiny   # seconds: a smoke test
    python benchmarks/bench_spark.py --out benchmarks/out/bench_spark.json
"""

from __future__ import annotations

import argparse, json, os, statistics, sys, time
from pathlib import Path

os.environ.setdefault('RECSYS_QUIET', '1')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--scale', default='small', help='synthetic scale (tiny, small, full)')
    p.add_argument('--seed', type=int, default=42)
    p.add_argument('--design', default='seed', help='confidence design name (recsys.confidence)')
    p.add_argument('--factors', type=int, default=64)
    p.add_argument(
        '--regularization', type=float, default=0.1, help="implicit's lambda (Spark gets spark_reg_param of it)"
    )
    p.add_argument('--iterations', type=int, default=10)
    p.add_argument('--threads', type=int, default=2, help='implicit threads = Spark local[N]')
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--memory', default='4g', help='Spark driver memory')
    p.add_argument('--no-end-to-end', action='store_true', help='skip the end-to-end timing')
    p.add_argument('--tiny', action='store_true', help='tiny scale, 8 factors, 3 iterations, 1 repeat: a smoke test')
    p.add_argument('--out', type=Path, default=None, help='also write the results as JSON here')
    a = p.parse_args(argv)
    if a.tiny:
        a.scale, a.factors, a.iterations, a.repeats = 'tiny', 8, 3, 1

    import numpy as np
    from recsys.als import ALSModel
    from recsys.confidence import ConfidenceDesign, to_implicit
    from recsys.core import versions
    from recsys.ingest import aggregate, load_dataset
    from recsys.spark import (
        aggregate_events,
        fit_als,
        read_events,
        spark_confidence,
        spark_ratings,
        spark_reg,
        spark_session,
    )

    ds = load_dataset('synthetic', scale=a.scale, seed=a.seed)
    train = str(ds.files['train'])
    X = ds.interactions()
    design = ConfidenceDesign(a.design)
    C = design.apply(X)
    Ci = to_implicit(C)
    load0 = os.getloadavg()[0]
    print(
        f'data: synthetic {a.scale} ({X.n_rows:,} rows x {X.n_items:,} items, {C.nnz:,} pairs); design {design.label}; '
        f'factors={a.factors}, iterations={a.iterations}, threads={a.threads}, repeats={a.repeats}; '
        f'load average {load0:.1f} on {os.cpu_count()} cores',
        flush=True,
    )

    spark = spark_session(f'local[{a.threads}]', memory=a.memory, app_name='recsys-bench-spark')
    pairs = aggregate_events(read_events(spark, train)).cache()
    ratings = spark_ratings(spark_confidence(pairs, design)).cache()
    from pyspark.sql import functions as F

    got = ratings.agg(F.count(F.lit(1)).alias('n'), F.sum(F.col('rating').cast('double')).alias('s')).first()
    if got['n'] != C.nnz or not np.isclose(got['s'], float((C.data.astype(np.float64) - 1).sum()), rtol=1e-5):
        sys.exit(f'Spark and implicit do not get the same matrix: {got} vs nnz {C.nnz}, sum {(C.data - 1).sum()}')
    reg = spark_reg(a.regularization, ratings)

    def t_implicit(use_cg):
        t = time.perf_counter()
        ALSModel(
            factors=a.factors,
            regularization=a.regularization,
            iterations=a.iterations,
            use_cg=use_cg,
            num_threads=a.threads,
            seed=a.seed,
            calculate_training_loss=False,
        ).fit(Ci, show_progress=False)
        return time.perf_counter() - t

    def t_spark():
        t = time.perf_counter()
        m = fit_als(ratings, a.factors, reg, 1.0, a.iterations, a.seed)
        dt = time.perf_counter() - t
        m.userFactors.unpersist()
        m.itemFactors.unpersist()
        return dt

    t_implicit(True)
    fit_als(ratings, min(a.factors, 8), reg, 1.0, 1, a.seed)  # warm-up: imports, JIT, caches
    runs = {'spark': [], 'implicit-cg': [], 'implicit-cholesky': []}
    for r in range(a.repeats):
        order = [
            ('spark', t_spark),
            ('implicit-cg', lambda: t_implicit(True)),
            ('implicit-cholesky', lambda: t_implicit(False)),
        ]
        if r % 2:
            order.reverse()
        for name, f in order:
            runs[name].append(f())
        print(f'repeat {r + 1}: ' + ', '.join(f'{k} {v[-1]:.2f} s' for k, v in runs.items()), flush=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    res = {
        'data': {
            'scale': a.scale,
            'rows': X.n_rows,
            'items': X.n_items,
            'pairs': int(C.nnz),
            'design': design.to_dict(),
        },
        'params': {
            'factors': a.factors,
            'iterations': a.iterations,
            'regularization': a.regularization,
            'spark_reg_param': reg,
            'threads': a.threads,
            'repeats': a.repeats,
        },
        'fit_seconds': runs,
        'fit_median_s': med,
        'ratio_spark_over_implicit_cg': med['spark'] / med['implicit-cg'],
        'ratio_spark_over_implicit_cholesky': med['spark'] / med['implicit-cholesky'],
        'median_paired_ratio_cg': statistics.median(s / i for s, i in zip(runs['spark'], runs['implicit-cg'])),
    }

    if not a.no_end_to_end:
        pairs.unpersist()
        ratings.unpersist()
        t = time.perf_counter()
        r2 = spark_ratings(spark_confidence(aggregate_events(read_events(spark, train)), design)).cache()
        fit_als(r2, a.factors, spark_reg(a.regularization, r2), 1.0, a.iterations, a.seed)
        e2e_spark = time.perf_counter() - t
        r2.unpersist()
        t = time.perf_counter()
        X2 = aggregate(train)
        ALSModel(
            factors=a.factors,
            regularization=a.regularization,
            iterations=a.iterations,
            num_threads=a.threads,
            seed=a.seed,
            calculate_training_loss=False,
        ).fit(to_implicit(design.apply(X2)), show_progress=False)
        e2e_implicit = time.perf_counter() - t
        res['end_to_end_s'] = {'spark': e2e_spark, 'implicit-cg': e2e_implicit}
        res['ratio_end_to_end'] = e2e_spark / e2e_implicit
    spark.stop()
    res['load_average'] = [load0, os.getloadavg()[0]]
    res['versions'] = versions()

    print(
        f"\nfit, median of {a.repeats}: spark {med['spark']:.2f} s | implicit CG {med['implicit-cg']:.2f} s | "
        f"implicit Cholesky {med['implicit-cholesky']:.2f} s"
    )
    print(
        f"ratio spark / implicit (CG, implicit's default): {res['ratio_spark_over_implicit_cg']:.1f}x "
        f"(median of the per-repeat ratios: {res['median_paired_ratio_cg']:.1f}x)"
    )
    print(f"ratio spark / implicit (Cholesky, exact like Spark): {res['ratio_spark_over_implicit_cholesky']:.1f}x")
    if 'end_to_end_s' in res:
        print(
            f"end to end (parquet -> fitted): spark {res['end_to_end_s']['spark']:.1f} s | implicit "
            f"{res['end_to_end_s']['implicit-cg']:.1f} s | ratio {res['ratio_end_to_end']:.1f}x"
        )
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=1, default=str))
    return 0


if __name__ == '__main__':
    sys.exit(main())
