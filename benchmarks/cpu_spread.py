"""How far each report's headline figures move across CPUs and seeds, and where two CPUs part (issue 25).

A measurement script, not a benchmark and never a test: it imitates other processors with environment variables
that change the kernels NumPy and OpenBLAS choose, which tests and CI must not do. Each run executes a report
notebook with papermill exactly as tests/test_functional.py does (one BLAS thread, the notebook's own parameters),
in a fresh process whose environment selects the imitated CPU, and keeps its results.json.

    .venv/bin/python benchmarks/cpu_spread.py                    # 03, 05, 06 on tiny: seeds 42, 0..3, every setting
    .venv/bin/python benchmarks/cpu_spread.py --seeds 42 --settings native no-avx512   # a quick look
    .venv/bin/python benchmarks/cpu_spread.py --report-only      # the summary again, from the saved runs

Settings (what the process sees):
    native            this machine as it is
    no-avx512         an AVX2 machine without AVX-512, such as an AMD EPYC: OpenBLAS's Haswell kernel (the one
                      OpenBLAS also uses on Zen) and NumPy's SIMD dispatch without its AVX-512 targets
    openblas-haswell  only OpenBLAS's kernel changed
    numpy-no-avx512   only NumPy's dispatch changed
    sandybridge       OpenBLAS's AVX (pre-AVX2) kernel

Writes the runs to benchmarks/out/cpu_spread/<notebook>-<setting>-seed<N>.json and the summary to
benchmarks/CPU_SPREAD.md: for every headline figure its value, its spread across settings at each seed (the
cross-CPU spread), its spread across seeds, the tolerance derived from them, and the stage digests of 06 per setting
(the first digest that differs is where the runs parted). Runs two notebooks at a time.
"""

from __future__ import annotations

import argparse, concurrent.futures as cf, json, os, shutil, subprocess, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / 'out' / 'cpu_spread'
SUMMARY = HERE / 'CPU_SPREAD.md'


def _avx512_targets() -> str:
    "NumPy's AVX-512 features and dispatch targets on this build, as NPY_DISABLE_CPU_FEATURES wants them."
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    names = [k for k in __cpu_features__ if k.startswith('AVX512')] + [t for t in __cpu_dispatch__ if 'AVX512' in t]
    return ' '.join(dict.fromkeys(names + ['X86_V4']))


def settings() -> dict[str, dict]:
    no512 = _avx512_targets()
    return {
        'native': {},
        'no-avx512': {'OPENBLAS_CORETYPE': 'Haswell', 'NPY_DISABLE_CPU_FEATURES': no512},
        'openblas-haswell': {'OPENBLAS_CORETYPE': 'Haswell'},
        'numpy-no-avx512': {'NPY_DISABLE_CPU_FEATURES': no512},
        'sandybridge': {'OPENBLAS_CORETYPE': 'Sandybridge'},
    }


REPORTS = {'03_confidence': {}, '05_evaluate': {}, '06_recommend': {}}  # each at its own (tiny) defaults


def run_one(
    nb: str,
    setting: str,
    seed: int,
    env_extra: dict,
    scale: str,
    params: dict | None = None,
    tag: str = '',
    threads: int = 1,
) -> Path:
    "Execute nbs/<nb>.ipynb with papermill in a fresh process under `env_extra`; keep its results.json."
    OUT.mkdir(parents=True, exist_ok=True)
    params = params or {}
    dest = OUT / (
        f'{nb}-{scale}{"-" + tag if tag else ""}-{setting}'
        f'{f"-{threads}threads" if threads != 1 else ""}-seed{seed}.json'
    )
    with tempfile.TemporaryDirectory() as d:
        env = {
            **os.environ,
            'OMP_NUM_THREADS': str(threads),
            'OPENBLAS_NUM_THREADS': str(threads),
            'MKL_NUM_THREADS': str(threads),
            'JUPYTER_PLATFORM_DIRS': '1',
            'RECSYS_QUIET': '1',
            **env_extra,
        }
        for k in ('OPENBLAS_CORETYPE', 'NPY_DISABLE_CPU_FEATURES'):
            if k not in env_extra:
                env.pop(k, None)
        cmd = [sys.executable, '-m', 'papermill', str(ROOT / 'nbs' / f'{nb}.ipynb'), f'{d}/nb.ipynb',
               '-p', 'seed', str(seed), '-p', 'out_dir', d, '-p', 'scale', scale, '--cwd', str(ROOT / 'nbs'),
               '--no-progress-bar', '--log-level', 'ERROR']  # fmt: skip
        for k, v in params.items():
            cmd += ['-p', k, str(v)]
        t0 = time.time()
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
        if r.returncode:
            raise RuntimeError(f'{nb} {setting} seed {seed} failed:\n{r.stderr[-3000:]}')
        rec = json.loads((Path(d) / 'results.json').read_text())
        rec['_spread'] = dict(notebook=nb, setting=setting, seed=seed, scale=scale, env=env_extra, params=params,
                              tag=tag, threads=threads, wall_s=round(time.time() - t0, 1))  # fmt: skip
        dest.write_text(json.dumps(rec, indent=1))
    print(f'{nb} {tag} {setting:17s} seed {seed:3d}: {time.time() - t0:5.1f} s', flush=True)
    return dest


def figures(rec: dict) -> dict[str, float]:
    "The headline figures tests/test_functional.py pins, by notebook."
    nb = rec['_spread']['notebook']
    if nb == '03_confidence':
        return {k: rec['metrics'][k] for k in ('winner_test', 'seed_test', 'popularity_test')}
    if nb == '05_evaluate':
        keep = ('ndcg@5', 'ndcg@10', 'map', 'precision@10', 'recall@10')
        return {f'{m} {k}': x for m, v in rec['metrics']['test'].items() for k, x in v.items() if k in keep}
    if nb == '06_recommend':
        return {
            f'{m} | {k}': v for m, r in rec['table'].items() for k, v in r.items() if k in ('ndcg@5', 'ndcg@5 future')
        }
    raise ValueError(nb)


def load_runs() -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(OUT.glob('*.json'))]


def _threads(s: dict) -> int:
    return int(
        s.get('threads') or (s.get('tag', '').removesuffix('threads') if s.get('tag', '').endswith('threads') else 1)
    )


def _dataset(s: dict) -> str:
    return (s.get('params') or {}).get('dataset', 'synthetic')


def _tag(s: dict) -> str:
    "A variant's name; thread counts are settings, not variants."
    return '' if s.get('tag', '').endswith('threads') else s.get('tag', '')


def regression_table(runs: list[dict]):
    """How far a real change moves each pinned figure: tagged variants against the untagged native run,
    and 06's ablation."""
    import pandas as pd

    def key(s):
        return (s['notebook'], _dataset(s), s['scale'], s['seed'], _threads(s))

    base = {key(r['_spread']): r for r in runs if r['_spread']['setting'] == 'native' and not _tag(r['_spread'])}
    rows = []
    for r in runs:
        s = r['_spread']
        if _tag(s) and s['setting'] == 'native' and key(s) in base:
            b = figures(base[key(s)])
            for f, v in figures(r).items():
                if f in b and abs(v - b[f]) > 1e-9:
                    rows.append(dict(notebook=s['notebook'], scale=s['scale'], change=f'{_tag(s)} ({s.get("params")})',
                                     figure=f, before=b[f], after=v, delta=v - b[f]))  # fmt: skip
    for r in base.values():
        s = r['_spread']
        if s['notebook'] == '06_recommend' and s['seed'] == 42 and r.get('ablation'):
            for change, a in r['ablation'].items():
                if not change.startswith('none'):
                    for k in ('ndcg@5', 'ndcg@5 future'):
                        delta = a['delta' if k == 'ndcg@5' else 'delta future']
                        rows.append(dict(notebook=s['notebook'] + f' ({_threads(s)} thread(s))', scale=s['scale'],
                                         change=f'ablation: {change}', figure=f'two-stage {k}', before=a[k] - delta,
                                         after=a[k], delta=delta))  # fmt: skip
    return pd.DataFrame(rows)


def spread_table(runs: list[dict]):
    "One row per (notebook, figure): value at seed 42 native, cross-CPU spread (max over seeds), seed spread."
    import pandas as pd

    rows = []
    for r in runs:
        s = r['_spread']
        if _tag(s):
            continue  # variants are regressions, in regression_table
        for f, v in figures(r).items():
            nb = s['notebook'] + (f' [{_dataset(s)}]' if _dataset(s) != 'synthetic' else '')
            setting = s['setting'] + (f', {_threads(s)} threads' if _threads(s) != 1 else '')
            rows.append(dict(notebook=nb, scale=s['scale'], figure=f, setting=setting, seed=s['seed'], value=v))
    df = pd.DataFrame(rows)
    out = []
    for (nb, scale, f), g in df.groupby(['notebook', 'scale', 'figure'], sort=False):
        per_seed = g.groupby('seed').value.agg(lambda x: x.max() - x.min())
        nat = g[g.setting == 'native'].set_index('seed').value
        out.append(dict(notebook=nb, scale=scale, figure=f, seed42_native=nat.get(42), cpu_spread=per_seed.max(),
                        cpu_spread_seed42=per_seed.get(42), seeds=len(per_seed), settings=g.setting.nunique(),
                        seed_sd=nat.std() if len(nat) > 1 else None))  # fmt: skip
    return pd.DataFrame(out)


def stage_table(runs: list[dict], seed: int = 42, scale: str = 'tiny'):
    "06's stage digests per setting at `seed`: '=' where a setting's digest equals native's, 'differs' where not."
    import pandas as pd

    recs = {
        r['_spread']['setting']: r
        for r in runs
        if r['_spread']['notebook'] == '06_recommend'
        and r['_spread']['seed'] == seed
        and r['_spread']['scale'] == scale
        and not r['_spread'].get('tag')
        and _threads(r['_spread']) == 1
    }
    if 'native' not in recs:
        return None
    base = recs['native'].get('stage_hashes') or {}
    cols = {
        s: ['=' if r.get('stage_hashes', {}).get(k) == v else 'differs' for k, v in base.items()]
        for s, r in recs.items()
    }
    return pd.DataFrame(cols, index=list(base))


def _md(df, index: bool = False) -> str:
    "A DataFrame as a markdown table (floats to 4 decimals), without tabulate."
    df = df.reset_index() if index else df
    fmt = [
        [f'{v:.4f}' if isinstance(v, float) else ('' if v is None else str(v)) for v in row]
        for row in df.itertuples(index=False)
    ]
    head = [str(c) for c in df.columns]
    return '\n'.join(
        ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)] + ['| ' + ' | '.join(r) + ' |' for r in fmt]
    )


def write_summary(runs: list[dict]) -> str:
    sp, st = spread_table(runs), stage_table(runs)
    machine = runs[0].get('machine', {}) if runs else {}
    lines = [
        '# How far the reports\' headline figures move across CPUs and seeds',
        '',
        f'Written by `benchmarks/cpu_spread.py` from {len(runs)} runs on {machine.get("cpu")} '
        f'(NumPy dispatch {machine.get("simd", {}).get("dispatch")}, OpenBLAS kernels '
        f'{sorted({b.get("architecture") for b in machine.get("blas", [])})}), '
        f'commit {runs[0].get("git_commit") if runs else None}. '
        'Each run is a report notebook under papermill with one BLAS thread, as in tests/test_functional.py.',
        '',
        '`cpu_spread` is the largest max - min of a figure across the imitated CPUs at one seed'
        ' (over all seeds measured);'
        ' `seed_sd` is the standard deviation across seeds on this CPU (another dataset, not another machine).',
        '',
        _md(sp) if len(sp) else '(no runs)',
        '',
    ]
    rg = regression_table(runs)
    if len(rg):
        lines += ['## Regressions: how far a real change moves a figure', '',
                  'A tolerance is useful when a real change moves the figure beyond it.'
                  ' Variants run on this CPU at seed 42'
                  ' (`--param`, `--tag`) against the same run unchanged, and 06\'s own ablation (the ranker refitted'
                  ' without one feature group or candidate source, scored on the same test).', '',
                  _md(rg), '']  # fmt: skip
    if st is not None:
        lines += ['## Where the settings part (06, seed 42): stage digests against native', '',
                  _md(st, index=True), '']  # fmt: skip
    text = '\n'.join(lines)
    SUMMARY.write_text(text)
    return text


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--notebooks', nargs='+', default=list(REPORTS))
    ap.add_argument('--seeds', nargs='+', type=int, default=[42, 0, 1, 2, 3])
    ap.add_argument('--settings', nargs='+', default=None, help='default: all of settings()')
    ap.add_argument('--scale', default='tiny')
    ap.add_argument('--jobs', type=int, default=2)
    ap.add_argument(
        '--param', action='append', default=[], metavar='NAME=VALUE', help='a notebook parameter (a variant)'
    )
    ap.add_argument('--tag', default='', help='names the variant in file names and tables')
    ap.add_argument(
        '--threads', type=int, default=1, help='BLAS threads of each run (tests use 1, make reports all cores)'
    )
    ap.add_argument('--report-only', action='store_true')
    ap.add_argument('--fresh', action='store_true', help='forget earlier runs first')
    a = ap.parse_args(argv)
    if a.fresh and OUT.exists():
        shutil.rmtree(OUT)
    if not a.report_only:
        sets = settings()
        todo = [(nb, s, seed) for nb in a.notebooks for seed in a.seeds for s in (a.settings or list(sets))]
        with cf.ThreadPoolExecutor(a.jobs) as ex:
            prm = dict(p.split('=', 1) for p in a.param)
            futs = [ex.submit(run_one, nb, s, seed, sets[s], a.scale, prm, a.tag, a.threads) for nb, s, seed in todo]
            for f in cf.as_completed(futs):
                f.result()
    print(write_summary(load_runs()))


if __name__ == '__main__':
    main()
