"""Markers (the fast inner loop: `make check` deselects the slow kinds) and the session-scoped fixtures that let
several test modules share one heavy run instead of each making its own."""

import json, os, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

MARKERS = {
    'functional': 'runs a report notebook with papermill on small data and pins its headline numbers '
    '(tests/test_functional.py); part of `make test`, deselect with -m "not functional"',
    'reports': 'runs report notebooks (papermill, recsys.reports.run_reports or the recsys-reports command)',
    'process': 'starts subprocesses: the console scripts, a server, a fresh Python',
    'spark': 'needs a Spark session (pyspark and Java), directly or through 08_spark',
    'browser': 'needs headless Chromium',
}


def pytest_configure(config):
    for name, text in MARKERS.items():
        config.addinivalue_line('markers', f'{name}: {text}')


# ---------------------------------------------------------------- report notebooks under papermill ----
def run_report(notebook: str, out: Path, **params) -> dict:
    """Execute nbs/<notebook>.ipynb with papermill into `out` (one BLAS thread, seed 42 unless given) and return its
    results.json."""
    import papermill as pm

    env = {'OMP_NUM_THREADS': '1', 'OPENBLAS_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1', 'JUPYTER_PLATFORM_DIRS': '1'}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits the environment it starts in
    try:
        out.mkdir(parents=True, exist_ok=True)
        pm.execute_notebook(
            str(ROOT / 'nbs' / f'{notebook}.ipynb'),
            str(out / 'notebook.ipynb'),
            kernel_name='python3',
            cwd=str(ROOT / 'nbs'),
            parameters={'seed': 42, 'out_dir': str(out), **params},
            progress_bar=False,
            log_output=False,
        )
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return json.loads((out / 'results.json').read_text())


@pytest.fixture(scope='session')
def papermill_report():
    "run_report (above), for the tests that run a notebook with parameters of their own."
    return run_report


@pytest.fixture(scope='session')
def report_03_tiny(tmp_path_factory):
    """03_confidence on tiny synthetic data at seed 42, its defaults: pinned by tests/test_functional.py and checked as
    a papermill report by tests/test_confidence.py. (out folder, results.json)"""
    out = tmp_path_factory.mktemp('report_03_tiny')
    return out, run_report('03_confidence', out, dataset='synthetic', scale='tiny')


# ---------------------------------------------------------------- a converted event log, and the reports on it ----
EVENT_MAP = 'pv=view,fav=cart,cart=cart,buy=purchase'
TAOBAO = [
    '--no-header',
    '--user',
    '1',
    '--item',
    '2',
    '--category',
    '3',
    '--event',
    '4',
    '--time',
    '5',
    '--event-map',
    EVENT_MAP,
]


def taobao_log(path, users=300, days=6, seed=1):
    """Header-less user,item,category,behaviour,unix-seconds rows: sessions of views with some carts, favourites and
    purchases; a third of the sessions are basket sessions that cart several products of one category."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    t0 = 1511481600  # 2017-11-24 00:00 UTC
    for u in range(1, users + 1):
        taste = rng.integers(1, 15, 2)
        for d in range(days):
            for _ in range(rng.poisson(1.3)):
                start = t0 + d * 86400 + int(rng.integers(7 * 3600, 23 * 3600))
                basket = rng.random() < 0.35
                cat = int(rng.choice(taste)) if rng.random() < 0.7 else int(rng.integers(1, 15))
                for j in range(int(rng.integers(2, 14))):
                    item = cat * 1000 + int(rng.zipf(1.5) % 150)
                    r = rng.random()
                    pc = 0.4 if basket else 0.02
                    b = 'cart' if r < pc else 'fav' if r < pc + 0.04 else 'buy' if r < pc + 0.06 else 'pv'
                    rows.append((1000 + u, item, cat, b, start + 45 * j + int(rng.integers(0, 30))))
    pd.DataFrame(rows).sample(frac=1, random_state=seed).to_csv(path, header=False, index=False)
    return Path(path), len(rows)


@pytest.fixture(scope='session')
def taobao(tmp_path_factory):
    """A header-less Taobao-style log written here and converted by `recsys-ingest convert-log`: a generic event log
    (sessions, carts, purchases; no users, no embeddings, no planted truth). dir, log, n (rows), ds, stdout, and the
    arguments that convert it: args, event_map."""
    d = tmp_path_factory.mktemp('taobao')
    log, n = taobao_log(d / 'UserBehavior.csv')
    p = subprocess.run(
        [str(BIN / 'recsys-ingest'), 'convert-log', str(log), '--out', str(d / 'ds'), *TAOBAO],
        capture_output=True,
        text=True,
        env={**os.environ, 'RECSYS_QUIET': '1'},
        timeout=600,
    )
    assert p.returncode == 0, (p.stdout, p.stderr)
    return dict(dir=d, log=log, n=n, ds=d / 'ds', stdout=p.stdout, args=list(TAOBAO), event_map=EVENT_MAP)


def recsys_reports(dataset, out: Path, *extra, env=None) -> tuple[dict, str]:
    """The recsys-reports command on `dataset` into out/run (reports dir out/reports, two jobs, no screenshot):
    (status by job, stdout); every job must end ok or not applicable."""
    env = {**os.environ, 'RECSYS_QUIET': '1', 'RECSYS_REPORTS_DIR': str(out / 'reports'), **(env or {})}
    p = subprocess.run(
        [str(BIN / 'recsys-reports'), '--dataset', str(dataset), '--jobs', '2', '--no-screenshot']
        + ['--out', str(out / 'run'), *extra],
        capture_output=True,
        text=True,
        timeout=1500,
        env=env,
        cwd=ROOT,
    )
    status = {r['key']: r['status'] for r in json.loads((out / 'run' / 'run.json').read_text())['records']}
    assert p.returncode == 0 and set(status.values()) <= {'ok', 'not applicable'}, (
        status,
        p.stdout[-3000:],
        p.stderr[-3000:],
    )
    return status, p.stdout


@pytest.fixture(scope='session')
def reports_cmd():
    "recsys_reports (above), for the tests that run the command on data of their own."
    return recsys_reports


@pytest.fixture(scope='session')
def taobao_reports(taobao, tmp_path_factory):
    """Every report on the converted log, run once (tests/test_convert.py and tests/test_reports.py read it):
    run (the run folder), status (by job), stdout."""
    out = tmp_path_factory.mktemp('taobao_reports')
    status, stdout = recsys_reports(taobao['ds'], out)
    return dict(run=out / 'run', status=status, stdout=stdout)
