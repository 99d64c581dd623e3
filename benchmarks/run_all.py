"""Run every benchmark in its own process and write benchmarks/RESULTS.md (what `make bench` does).

Each benchmarks/bench_*.py runs once as a subprocess of this driver (each script takes its own medians over
several runs); the driver records the exact command, its exit status, wall time, CPU time, peak RSS (of the
largest process, and of the whole process tree sampled every 0.25 s) and the load average around it, keeps the
script's output verbatim, reads the script's JSON where it writes one (benchmarks/out/bench_<name>.json) and
otherwise parses the figures it prints. RESULTS.md gets the machine (CPU, cores, RAM, load average at start and
end: the machine may be shared), the date, the git commit, and per benchmark its command, figures, ratios and
targets. Every figure sits under the command that produced it.

    .venv/bin/python benchmarks/run_all.py                 # everything at the issue's sizes, full scale included
    .venv/bin/python benchmarks/run_all.py --quick         # smaller sizes (minutes): a check, not the reference figures
    .venv/bin/python benchmarks/run_all.py --only ingest als   # some; the others keep their last records
    .venv/bin/python benchmarks/run_all.py --skip full         # all but the full-scale run (its last record is kept)
    .venv/bin/python benchmarks/run_all.py --report-only       # rewrite RESULTS.md from the saved records
    .venv/bin/python benchmarks/run_all.py --list              # the commands, without running them

Records of each run go to benchmarks/out/run_all/<name>.json (git-ignored); RESULTS.md is written from the latest
record of every benchmark, so that benchmarks run separately (e.g. the full-scale one) still appear, with their date.
Exit status: 1 when a benchmark crashed or timed out (no figures), else 0; missed targets are reported, not fatal.
"""

from __future__ import annotations

import argparse, json, os, re, statistics, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import HERE, OUT, ROOT, machine_info, run_measured, shell_join  # noqa: E402

RECORDS = OUT / 'run_all'
PY = Path(sys.executable)

# name -> script, what it measures, arguments at the sizes, at --quick sizes, the JSON it writes (or None)
BENCHES = {
    'ingest': dict(
        script='bench_ingest.py',
        title='Ingestion: parquet -> CSR interactions',
        full=['--out', OUT],
        quick=['--rows', '1000000', '--out', OUT],
        json=OUT / 'bench_ingest.json',
    ),
    'users_api': dict(
        script='bench_users_api.py',
        title='Users API harvester against the loopback server',
        full=['--json', OUT / 'bench_users_api.json'],
        quick=['--users', '4000', '--repeats', '3', '--naive-users', '1000', '--json', OUT / 'bench_users_api.json'],
        json=OUT / 'bench_users_api.json',
    ),
    'als': dict(
        script='bench_als.py',
        title='ALS fit: ALSModel against implicit called directly',
        full=['--out', OUT / 'bench_als.json'],
        quick=[
            '--users',
            '20000',
            '--items',
            '5000',
            '--events',
            '400000',
            '--iterations',
            '5',
            '--repeats',
            '3',
            '--out',
            OUT / 'bench_als.json',
        ],
        json=OUT / 'bench_als.json',
    ),
    'spark': dict(
        script='bench_spark.py',
        title='ALS fit: Spark MLlib (local mode) against implicit',
        full=['--out', OUT / 'bench_spark.json'],
        quick=['--tiny', '--out', OUT / 'bench_spark.json'],
        json=OUT / 'bench_spark.json',
    ),
    'evaluate': dict(
        script='bench_evaluate.py',
        title='Evaluation: ranking_metrics against per-user pandas',
        full=[],
        quick=['--users', '20000', '--pandas-users', '2000', '--runs', '3', '--pandas-runs', '3'],
        json=None,
    ),
    'predict': dict(
        script='bench_predict.py',
        title='Prediction: sessions per second',
        full=[],
        quick=['--scale', 'small', '--sessions', '5000', '--iterations', '2', '--repeats', '3'],
        json=None,
    ),
    'reports': dict(
        script='bench_reports.py',
        title='Reports pipeline: --jobs 2 against --jobs 1',
        full=['--repeat', '3'],
        quick=['--work', '1'],
        json=None,
    ),
    'full': dict(
        script='bench_full.py',
        title='Full scale: raw files -> predictions_3.json',
        full=[],
        quick=['--scale', 'small'],
        json=OUT / 'bench_full.json',
        timeout=2 * 3600,
    ),
}


def discover() -> dict:
    "The registry, plus any other benchmarks/bench_*.py (run without arguments, output shown verbatim)."
    b = {k: dict(v) for k, v in BENCHES.items() if (HERE / v['script']).exists()}
    known = {v['script'] for v in BENCHES.values()}
    for f in sorted(HERE.glob('bench_*.py')):
        if f.name not in known:
            name = f.stem.removeprefix('bench_')
            b[name] = dict(script=f.name, title=f.stem, full=[], quick=[], json=None)
    return b


def command(spec, quick) -> list:
    return [PY, HERE / spec['script'], *spec['quick' if quick else 'full']]


# --- figures from each benchmark: a JSON it wrote, or its printed lines ----------------------------------------------


def _num(s):
    return float(s.replace(',', ''))


def _f(x, d=2):
    return f'{x:,.{d}f}'


def _opt(argv, flag, default=None):
    return argv[argv.index(flag) + 1] if flag in argv and argv.index(flag) + 1 < len(argv) else default


def fig_ingest(j, out, argv):
    if not j:
        return None
    P = j['pipelines']
    rows = []
    rep = _opt(argv, '--repeats', '3')
    for name, r in P.items():
        rows.append(
            (f'{name}: median wall / CPU (of {rep})', f"{_f(r['median_wall_s'])} s / {_f(r['median_cpu_s'])} s")
        )
        rows.append(
            (
                f'{name}: events/s (wall; per CPU-s)',
                f"{r['events_per_s'] / 1e6:.2f} M/s; {r['events_per_cpu_s'] / 1e6:.2f} M/s",
            )
        )
        rows.append((f'{name}: peak RSS (its own process)', f"{r['peak_rss_mib']:,.0f} MiB"))
    ratio = []
    if 'recsys' in P:
        for name, r in P.items():
            if name != 'recsys':
                w, c = (
                    r['median_wall_s'] / P['recsys']['median_wall_s'],
                    r['median_cpu_s'] / P['recsys']['median_cpu_s'],
                )
                rows.append((f'{name} / recsys (wall; CPU)', f'{w:.1f}x; {c:.1f}x'))
                ratio.append(f'{w:.1f}x faster than {name}')
    res = next(iter(P.values()))['result']
    rows.insert(
        0,
        (
            'input',
            f"{j['rows']:,} events -> {res['shape'][0]:,} rows x {res['shape'][1]:,} items, {res['nnz']:,} pairs",
        ),
    )
    head = f"recsys {P['recsys']['events_per_s'] / 1e6:.2f} M events/s" if 'recsys' in P else ''
    return dict(rows=rows, headline=head, ratio='; '.join(ratio), target='', verdict='')


def fig_users_api(j, out, argv):
    if not j:
        return None
    med = j['median_users_per_s']
    rows = [
        ('users per run x runs', f"{j['users']:,} x {j['repeats']}, {j['concurrency']} requests in flight"),
        (f"harvest: median users/s fetching (of {j['repeats']})", f'{med:,.0f}'),
        ('harvest: median users/s end to end (checkpoint + parquet)', f"{j['median_end_to_end_users_per_s']:,.0f}"),
        ('harvester CPU per user (median, client)', f"{statistics.median(j['client_cpu_us_per_user']):.0f} us"),
        ('naive threaded httpx client (median of 3)', f"{j['naive_threaded_users_per_s']:,.0f} users/s"),
        ('naive sequential client', f"{j['naive_sequential_users_per_s']:,.0f} users/s"),
    ]
    ratio = (
        f"{med / j['naive_threaded_users_per_s']:.1f}x naive threaded, "
        f"{med / j['naive_sequential_users_per_s']:.1f}x sequential"
    )
    rows.append(('harvester / naive threaded; / sequential', ratio))
    return dict(
        rows=rows,
        headline=f'{med:,.0f} users/s',
        ratio=ratio,
        target='>= 2,000 users/s',
        verdict='met' if med >= 2000 else 'MISSED',
    )


def fig_als(j, out, argv):
    if not j:
        return None
    p = j['params']
    rows = [
        (
            'matrix',
            f"{p['users']:,} x {p['items']:,}, {j['nnz']:,} cells; {p['factors']} factors, "
            f"{p['iterations']} iterations, {p['repeats']} repeats, threads {p['threads'] or j.get('cpus')}",
        )
    ]
    by = {(r['clock'], r['condition']): r for r in j['rows']}
    for (clock, cond), r in by.items():
        rows.append(
            (f'{cond} ({clock}): median implicit / ALSModel', f"{_f(r['implicit_s'], 3)} s / {_f(r['recsys_s'], 3)} s")
        )
        rows.append(
            (
                f'{cond} ({clock}): ALSModel / implicit (ratio of medians; median pairwise)',
                f"{r['ratio_of_medians']:.3f}; {r['median_pair_ratio']:.3f}",
            )
        )
    rows.append(
        (
            'fixed cost added by ALSModel (0-iteration fits, median of 21)',
            f"{j['fixed_added_s'] * 1000:+.1f} ms = {j['fixed_added_fraction']:+.2%} of one fit",
        )
    )
    worst = max(r['ratio_of_medians'] for r in j['rows'] if r['clock'] == 'wall')
    worst_cpu = max(r['ratio_of_medians'] for r in j['rows'] if r['clock'] == 'cpu')
    return dict(
        rows=rows,
        headline=f"overhead {worst - 1:+.1%} wall, {worst_cpu - 1:+.1%} CPU",
        ratio=f'ALSModel / implicit {worst:.3f} (wall), {worst_cpu:.3f} (CPU), worst condition',
        target='overhead <= 5 % (wall)',
        verdict='met' if worst <= 1.05 else 'MISSED',
    )


def fig_spark(j, out, argv):
    if not j:
        return None
    d, p, m = j['data'], j['params'], j['fit_median_s']
    rows = [
        (
            'data',
            f"synthetic {d['scale']}: {d['rows']:,} x {d['items']:,}, {d['pairs']:,} pairs; rank {p['factors']}, "
            f"{p['iterations']} iterations, {p['threads']} threads, {p['repeats']} repeats",
        )
    ]
    for k, v in m.items():
        rows.append((f'fit {k}: median of {p["repeats"]}', f'{_f(v)} s'))
    rows.append(
        (
            'Spark / implicit CG; / implicit Cholesky',
            f"{j['ratio_spark_over_implicit_cg']:.1f}x; {j['ratio_spark_over_implicit_cholesky']:.1f}x",
        )
    )
    if 'end_to_end_s' in j:
        e = j['end_to_end_s']
        rows.append(
            (
                'end to end, parquet -> fitted (one run each): Spark / implicit',
                f"{_f(e['spark'], 1)} s / {_f(e['implicit-cg'], 1)} s = {j['ratio_end_to_end']:.1f}x",
            )
        )
    return dict(
        rows=rows,
        headline=f"Spark fit {_f(m['spark'])} s, implicit {_f(m['implicit-cg'])} s",
        ratio=f"Spark {j['ratio_spark_over_implicit_cg']:.1f}x slower than implicit (CG)",
        target='',
        verdict='',
    )


def fig_evaluate(j, out, argv):
    ours = re.findall(r'ranking_metrics, ([\d,]+) users: median ([\d.]+) s over (\d+) runs', out)
    pd_ = re.search(r'per-user pandas, ([\d,]+) users: median ([\d.]+) s over (\d+) runs', out)
    ratio = re.search(r'ratio \(pandas / vectorised, same ([\d,]+) users\): ([\d,]+)x', out)
    diff = re.search(r'largest difference between the two over \d+ metrics: (\S+)', out)
    if not ours:
        return None
    rows = [(f'ranking_metrics, {u} users: median of {n}', f'{t} s') for u, t, n in ours]
    if pd_:
        rows.append((f'per-user pandas, {pd_[1]} users: median of {pd_[3]}', f'{pd_[2]} s'))
    if ratio:
        rows.append((f'pandas / ranking_metrics, same {ratio[1]} users', f'{ratio[2]}x'))
    if diff:
        rows.append(('largest difference between the two', diff[1]))
    n_users, t = _num(ours[0][0]), float(ours[0][1])
    verdict = ('met' if t <= 1 else 'MISSED') if n_users >= 100_000 else f'n/a ({n_users:,.0f} users, not 100k)'
    return dict(
        rows=rows,
        headline=f'{n_users:,.0f} users in {t} s',
        ratio=f'{ratio[2]}x faster than pandas' if ratio else '',
        target='100k users at K=10 <= 1 s',
        verdict=verdict,
    )


def fig_predict(j, out, argv):
    m = re.search(r'median: ([\d.]+) s wall -> ([\d,]+) sessions/s; ([\d.]+) s CPU -> ([\d,]+) sessions/s', out)
    if not m:
        return None
    n = re.search(r'sessions per run: ([\d,]+) \(([\d,]+) rows\)', out)
    e2e = re.search(r'predictions_3\.json end to end.*?: ([\d.]+) s -> ([\d,]+) sessions/s', out)
    data = re.search(r'data: (.*?); trained', out)
    rep = _opt(argv, '--repeats', '5')
    rows = []
    if data:
        rows.append(('model', data[1]))
    if n:
        rows.append(('sessions per run', f'{n[1]} ({n[2]} rows)'))
    rows += [
        (f'median of {rep}: wall', f'{m[1]} s -> {m[2]} sessions/s'),
        (f'median of {rep}: CPU', f'{m[3]} s -> {m[4]} sessions/s'),
    ]
    lin = re.search(
        r'linear blend alone: median ([\d.]+) s wall -> ([\d,]+) sessions/s; ([\d.]+) s CPU -> ([\d,]+) sessions/s '
        r'of CPU time; two-stage / linear: ([\d.]+)x',
        out,
    )
    if lin:
        rows.append(
            (
                f'linear blend alone, same run: median of {rep}',
                f'{lin[1]} s wall -> {lin[2]} sessions/s; CPU {lin[4]} sessions/s',
            )
        )
    if e2e:
        rows.append(
            (
                'predictions_3.json end to end (read, recommend, write, validate; one run)',
                f'{e2e[1]} s -> {e2e[2]} sessions/s',
            )
        )
    rate, cpu_rate = _num(m[2]), _num(m[4])
    rows.append(
        (
            'the same rate per CPU-second (no waiting for a busy CPU)',
            f"{m[4]} sessions/s: {'met' if cpu_rate >= 5000 else 'missed'}",
        )
    )
    return dict(
        rows=rows,
        headline=f'two-stage {m[2]} sessions/s (wall), {m[4]} per CPU-s',
        ratio=f'{lin[5]}x the linear blend\'s time' if lin else '',
        target='>= 5,000 sessions/s (wall)',
        verdict='met' if rate >= 5000 else 'MISSED',
    )


def fig_reports(j, out, argv):
    js = [l for l in out.splitlines() if l.startswith('{') and '"speedup"' in l]
    if not js:
        return None
    r = json.loads(js[-1])
    rep = _opt(argv, '--repeat', '1')
    rows = [
        ('what', r['what']),
        (f'--jobs 1: median of {rep}', f"{r['jobs1_s']} s"),
        (f'--jobs 2: median of {rep}', f"{r['jobs2_s']} s"),
        (
            'speed-up (jobs 1 / jobs 2)',
            f"{r['speedup']}x on {r['cores']} cores (load average {r['load_avg_1min']} at the end)",
        ),
    ]
    return dict(
        rows=rows,
        headline=f"--jobs 2 {r['jobs2_s']} s vs --jobs 1 {r['jobs1_s']} s",
        ratio=f"{r['speedup']}x",
        target='',
        verdict='',
    )


def _mib(x):
    return f'{x:,.0f} MiB' if x is not None else 'n/a'


def fig_full(j, out, argv):
    if not j:
        return None
    if 'error' in j and not j.get('stages', {}).get('predict'):
        return dict(
            rows=[('error', j['error'])],
            headline='did not run to the end',
            ratio='',
            target='<= 10 min, <= 12 GB',
            verdict='FAILED',
        )
    rows = []
    if j.get('data'):
        d = j['data']
        g = lambda *k: (lambda v: v)(__import__('functools').reduce(lambda x, y: (x or {}).get(y), k, d))
        rows.append(
            (
                'data (raw files)',
                f"synthetic {j['scale']} seed {j['seed']}: train {g('train', 'rows') or 0:,} events "
                f"({g('train', 'sessions') or 0:,} sessions), test {g('test', 'sessions') or 0:,} sessions, "
                f"{g('products', 'rows') or 0:,} products ({g('products', 'emb_dim')}-d embeddings), "
                f"{g('users', 'rows') or 0:,} users; {j.get('data_size_mib', 0):,.0f} MiB on disk",
            )
        )
    for s in ('generate', 'train', 'predict'):
        st = j['stages'].get(s)
        if not st:
            continue
        if st.get('reused'):
            rows.append((s, 'reused existing files (not timed)'))
            continue
        rows.append(
            (
                f'{s}: `{st["command"]}`',
                f"wall {_f(st['wall_s'], 1)} s, CPU {_f(st['cpu_s'], 1)} s, peak RSS "
                f"{_mib(st['peak_rss_mib'])} (tree {_mib(st.get('peak_tree_rss_mib'))}), exit {st['returncode']}, "
                f"load {st['load_start'][0]:.1f} -> {st['load_end'][0]:.1f}",
            )
        )
    t = j.get('totals')
    if t:
        rows.append(
            (
                'train + predict',
                f"{_f(t['train_plus_predict_s'], 1)} s wall ({t['train_plus_predict_s'] / 60:.1f} min), "
                f"{_f(t['train_plus_predict_cpu_s'], 1)} CPU s; peak RSS {t['peak_rss_gb']:.2f} GB",
            )
        )
        rows.append(('with generation (the stand-in for downloading)', f"{_f(t['with_generation_s'], 1)} s"))
    if j.get('predictions'):
        rows.append(('predictions_3.json', f"{j['predictions']['sessions']:,} sessions"))
    if j.get('ndcg@5'):
        n = j['ndcg@5']
        rows.append(
            (
                'NDCG@5 against the hidden labels (all carts)',
                f"{n['overall']:.4f} overall; "
                + ', '.join(f'{k} {v:.4f}' for k, v in n.items() if k != 'overall')
                + (f" (validation {j['validation_ndcg@5']:.4f})" if j.get('validation_ndcg@5') is not None else ''),
            )
        )
    if j.get('ndcg@5 future'):
        n = j['ndcg@5 future']
        rows.append(
            (
                'NDCG@5 on future carts only',
                f"{n['overall']:.4f} overall; " + ', '.join(f'{k} {v:.4f}' for k, v in n.items() if k != 'overall'),
            )
        )
    for m, v in (j.get('compare') or {}).items():
        rows.append((f'same test: {m}', f"NDCG@5 {v['all']:.4f} all carts, {v['future']:.4f} future carts"))
    if j.get('final_fit'):
        f = j['final_fit']
        rows.append(
            (
                'final fit',
                (
                    f"warm start from the validation model ({f.get('rows_matched', 0):.1%} of rows, "
                    f"{f.get('items_matched', 0):.1%} of items matched), "
                    if f.get('warm_start')
                    else 'cold start, '
                )
                + f"{f['iterations']} iterations",
            )
        )
    for r in j.get('train_stages') or []:
        rows.append(
            (
                f"train stage: {r['stage']}",
                f"wall {_f(r['wall_s'], 1)} s, CPU {_f(r['cpu_s'], 1)} s, peak RSS "
                f"{_mib(r.get('peak_rss_mib'))}, held after {_mib(r.get('rss_end_mib'))}",
            )
        )
    if j.get('error'):
        rows.append(('error', j['error']))
    v = j.get('verdict', {})
    verdict = f"time {v.get('time', '?')}, memory {v.get('memory', '?')}" if v else 'FAILED'
    head = (f"{t['train_plus_predict_s'] / 60:.1f} min, {t['peak_rss_gb']:.2f} GB" if t else 'incomplete') + (
        '' if j['scale'] == 'full' else f" ({j['scale']} scale)"
    )
    return dict(
        rows=rows, headline=head, ratio='', target='train + predict <= 10 min; peak RSS <= 12 GB', verdict=verdict
    )


FIGURES = {
    'ingest': fig_ingest,
    'users_api': fig_users_api,
    'als': fig_als,
    'spark': fig_spark,
    'evaluate': fig_evaluate,
    'predict': fig_predict,
    'reports': fig_reports,
    'full': fig_full,
}


# --- running ----------------------------------------------------------------------------------------------------


def figures(rec) -> dict | None:
    """The figures of one record, read afresh from its JSON and output (so a rewritten RESULTS.md uses the current
    parser)."""
    name = rec['name']
    if name not in FIGURES:
        return None
    try:
        f = FIGURES[name](rec.get('json'), rec['output'], rec['argv'])
    except Exception as e:
        rec['figures_error'] = repr(e)
        return None
    load, cores = rec['load_start'][0], (rec.get('machine') or {}).get('cores') or os.cpu_count() or 1
    if f and f.get('verdict') == 'MISSED' and load > cores:
        f['verdict'] = f'MISSED (load average {load:.1f} on {cores} cores at its start)'
    return f


def run_one(name, spec, quick, timeout, records: Path = RECORDS) -> dict:
    cmd = command(spec, quick)
    records.mkdir(parents=True, exist_ok=True)
    if spec.get('json'):
        Path(spec['json']).unlink(missing_ok=True)  # never read a stale result
    print(f"== {name}: {shell_join(cmd)}", flush=True)
    machine = machine_info()
    r = run_measured(cmd, log=records / f'{name}.log', timeout=spec.get('timeout', timeout), env={'RECSYS_QUIET': '1'})
    j = None
    if spec.get('json') and Path(spec['json']).exists():
        try:
            j = json.loads(Path(spec['json']).read_text())
        except ValueError:
            j = None
    rec = {
        'name': name,
        'script': spec['script'],
        'title': spec['title'],
        'quick': quick,
        'date': time.strftime('%Y-%m-%d %H:%M:%S %Z'),
        'machine': machine,
        **r,
        'json': j,
    }
    f = figures(rec)
    rec['status'] = (
        'timed out'
        if r['timed_out']
        else 'ok'
        if r['returncode'] == 0
        else f"exit {r['returncode']}" + ('' if f or name not in FIGURES else ', no figures: failed')
    )
    rec['failed'] = r['timed_out'] or (r['returncode'] != 0 and (name not in FIGURES or not f))
    (records / f'{name}.json').write_text(json.dumps(rec, indent=1, default=str))
    print(
        f"   {name}: {rec['status']}, {r['wall_s']:.1f} s, peak RSS {_mib(r['peak_rss_mib'])} "
        f"(tree {_mib(r['peak_tree_rss_mib'])})",
        flush=True,
    )
    return rec


# --- RESULTS.md ---------------------------------------------------------------------------------------------------


def _md(s) -> str:
    return str(s).replace('|', '\\|').replace('\n', ' ')


def _load(l):
    return ' / '.join(f'{x:.1f}' for x in l)


def write_results(path: Path, records: list[dict], notes: list[str] = ()):
    "RESULTS.md from the records: the machine and its load as the records saw them, a summary, then one section each."
    ms = [r['machine'] for r in records if r.get('machine')] or [machine_info()]
    m = ms[-1]
    dates = sorted(r['date'] for r in records)
    commits = sorted({(x.get('git') or {}).get('commit') or '?' for x in ms})
    g = m.get('git') or {}
    loads = [x for r in records for x in (r['load_start'][0], r['load_end'][0])]
    first, last = min(records, key=lambda r: r['date']), max(records, key=lambda r: r['date'])
    quick = [r['name'] for r in records if r.get('quick')]
    L = [
        '# Benchmarks: results',
        '',
        '> Generated by `benchmarks/run_all.py` (`make bench`) from a real run: do not edit by hand. '
        'Every figure below',
        '> sits under the command that produced it (run from the repository root).',
        '',
    ]
    if quick:
        L += [
            f"**Quick run** (`run_all.py --quick`) for: {', '.join(quick)}. "
            'These used smaller sizes than the issue asks for: '
            'they check that the scripts work, they are not the reference figures.',
            '',
        ]
    starts = [r['load_start'][0] for r in records]
    if statistics.median(starts) > (m['cores'] or 1):
        L += [
            '**The machine was under load**: the 1-minute load average before a benchmark started was '
            f"{statistics.median(starts):.1f} "
            f"(median; {min(starts):.1f} to {max(starts):.1f}) on {m['cores']} cores, so other work shared the CPUs "
            "(the 1-minute average also carries the previous benchmark's last minute) and absolute "
            'times are inflated. The ratios come from runs interleaved inside one script and are the steadier figures; '
            'CPU times are given where a script measures them.',
            '',
        ]
    else:
        L += [
            f"Load average around the benchmarks: {min(loads):.1f} to {max(loads):.1f} on {m['cores']} cores "
            "(the benchmarks' own "
            'processes count in it; before each one started it was at most '
            f'{max(starts):.1f}). The machine is shared, so a figure far from the others is worth a rerun.',
            '',
        ]
    for n in notes:
        L += [f'**Note:** {n}', '']
    dirty = (
        f" (+{g.get('modified', 0)} modified, {g.get('untracked', 0)} untracked files)"
        if g.get('modified') or g.get('untracked')
        else ''
    )
    blas = ', '.join(
        f"{b['internal_api']} {b['version']} ({b.get('architecture')} kernel, {b['num_threads']} threads)"
        for b in m.get('blas', [])
    )
    simd = ', '.join((m.get('simd') or {}).get('dispatch') or []) or 'n/a'
    L += [
        '## Machine',
        '',
        '| | |',
        '|---|---|',
        f"| date | {dates[0]}"
        + (f' to {dates[-1]}' if dates[-1] != dates[0] else '')
        + ' (each section gives its own) |',
        f"| git commit | {', '.join(f'`{c}`' for c in commits)}{dirty} |",
        f"| CPU | {m['host_cpu']}, {m['cores']} cores |",
        f"| RAM | {m['ram_gib']:.1f} GiB ({m['mem_available_gib']:.1f} GiB available before the last benchmark) |",
        f"| load average (1 / 5 / 15 min) | {_load(first['load_start'])} at the start ({first['name']}), "
        f"{_load(last['load_end'])} "
        f"at the end ({last['name']}) — the machine is shared: other processes may have run alongside |",
        f"| platform | {m['platform']} |",
        f"| versions | {', '.join(f'{k} {v}' for k, v in m.get('versions', {}).items())} |",
        f'| BLAS | {blas} |',
        f"| NumPy SIMD dispatch | {simd} (platform id {m.get('platform_id', 'n/a')}) |",
        '',
    ]
    for r in records:
        r['figures'] = figures(r)
    L += [
        '## Summary',
        '',
        '| benchmark | headline | ratio | target | verdict | peak RSS | command |',
        '|---|---|---|---|---|---|---|',
    ]
    for r in records:
        f = r.get('figures') or {}
        rss = max(r['peak_rss_mib'] or 0, r.get('peak_tree_rss_mib') or 0)
        L.append(
            f"| [{_md(r['title'])}](#{r['name']}) | {_md(f.get('headline', r['status']))} | "
            f"{_md(f.get('ratio', ''))} | {_md(f.get('target', ''))} | "
            f"{_md(f.get('verdict', '') or ('' if r['status'] == 'ok' else r['status']))} | "
            f"{_mib(rss)} | `{r['command']}` |"
        )
    L += [
        '',
        'Peak RSS is that of the whole benchmark process tree (driver measurement); the per-stage or per-pipeline '
        'figures inside a section are the benchmark\'s own.',
        '',
    ]
    for r in records:
        f = r.get('figures')
        L += [
            f'<a name="{r["name"]}"></a>',
            f"## {r['title']}",
            '',
            f"Command: `{r['command']}`" + (' (quick sizes)' if r.get('quick') else ''),
            '',
            f"Run {r['date']} on commit `{r['machine']['git'].get('short') or '?'}`: {r['status']}; "
            f"{r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU; peak RSS {_mib(r['peak_rss_mib'])} "
            f"(largest process), {_mib(r.get('peak_tree_rss_mib'))} (process tree); "
            f"load average {r['load_start'][0]:.1f} -> "
            f"{r['load_end'][0]:.1f}.",
            '',
        ]
        if f:
            L += ['| figure | value |', '|---|---|'] + [f'| {_md(k)} | {_md(v)} |' for k, v in f['rows']]
            if f.get('target'):
                L.append(f"| target: {_md(f['target'])} | **{_md(f['verdict'])}** |")
            L.append('')
        elif r['name'] in FIGURES:
            L += [f"No figures could be read from this run ({r.get('figures_error', 'see the output')}).", '']
        if r['name'] == 'full' and r.get('json') and r['json'].get('totals') and r['json']['scale'] == 'full':
            v = r['json']['verdict']
            if 'MISSED' in v.values():
                L += [
                    '**Missed:** '
                    + '; '.join(f'{k} target missed' for k, x in v.items() if x == 'MISSED')
                    + ' — see the stage rows above for which stage took the time or memory.',
                    '',
                ]
        out = r['output'].rstrip()
        tail = out.splitlines()
        if len(tail) > 80:
            out = '\n'.join(['[... first lines left out ...]'] + tail[-80:])
        L += ['<details><summary>Output of the command</summary>', '', '```', out, '```', '', '</details>', '']
    path.write_text('\n'.join(L))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument(
        '--quick', action='store_true', help='smaller sizes: minutes instead of an hour; not the reference figures'
    )
    ap.add_argument('--only', nargs='+', default=None, help='run only these benchmarks (names as in --list)')
    ap.add_argument(
        '--skip', nargs='+', default=[], help='do not run these (their last record, if any, is still reported)'
    )
    ap.add_argument('--report-only', action='store_true', help='run nothing; rewrite RESULTS.md from the saved records')
    ap.add_argument('--list', action='store_true', help='print the benchmarks and their commands, then exit')
    ap.add_argument('--timeout', type=float, default=3600, help='seconds per benchmark before it is stopped')
    ap.add_argument('--note', action='append', default=[], help='a note to print at the top of RESULTS.md (repeatable)')
    ap.add_argument('--results', type=Path, default=HERE / 'RESULTS.md')
    ap.add_argument('--records', type=Path, default=RECORDS, help='where each run\'s record is kept')
    a = ap.parse_args(argv)
    benches = discover()
    for n in (a.only or []) + a.skip:
        if n not in benches:
            ap.error(f'unknown benchmark {n!r}: one of {", ".join(benches)}')
    if a.list:
        for n, s in benches.items():
            print(f'{n:10s} {shell_join(command(s, a.quick))}')
        return 0
    a.records.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    print(
        f"run_all: {machine['host_cpu']}, {machine['cores']} cores, {machine['ram_gib']:.1f} GiB, load average "
        f"{_load(machine['load_average'])}, commit {machine['git'].get('short')}",
        flush=True,
    )
    todo = [] if a.report_only else [n for n in (a.only or benches) if n not in a.skip]
    for n in todo:
        run_one(n, benches[n], a.quick, a.timeout, a.records)
    records = []
    for n in benches:
        p = a.records / f'{n}.json'
        if p.exists():
            records.append(json.loads(p.read_text()))
    if not records:
        print('no records to report: run some benchmarks first', file=sys.stderr)
        return 1
    stale = [r['name'] for r in records if r['name'] not in todo]
    notes = list(a.note)
    if stale and todo:
        notes.append(
            "not run by this invocation, reported from their last record (see each section's date): "
            f"{', '.join(stale)}."
        )
    write_results(a.results, records, notes)
    print(f'-> {a.results.relative_to(ROOT) if a.results.is_relative_to(ROOT) else a.results}')
    failed = [r['name'] for r in records if r['name'] in todo and r.get('failed')]
    if failed:
        print(f'FAILED: {", ".join(failed)}', file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
