"""Issue 19: the installed commands never lose a user's work, refuse wrong models, and fail with one line, never a
traceback.

Every case runs a real console script from `.venv/bin` in a subprocess and checks its exit status, that the last line of
stderr names the file or flag and the fix, that stderr holds no traceback, and that every file that existed before the
command is byte-identical afterwards. The crash tests SIGKILL `recsys-train` and `recsys-synth` while they write."""

import hashlib, json, os, re, shutil, signal, socket, subprocess, sys, urllib.request
from pathlib import Path

import pandas as pd
import pytest

BIN = Path(sys.executable).parent
ENV = {**os.environ, 'RECSYS_QUIET': '1'}
pytestmark = pytest.mark.process  # every test runs the console scripts
TRAIN_FAST = ['--no-tune', '--factors', '8', '--iterations', '2', '--segments-k', '3']


def run(script, *args, timeout=120, cwd=None):
    return subprocess.run(
        [str(BIN / script), *map(str, args)], capture_output=True, text=True, timeout=timeout, env=ENV, cwd=cwd
    )


def snapshot(*roots) -> dict:
    "sha256 of every file under `roots` (files or folders)."
    out = {}
    for r in map(Path, roots):
        for p in [r] if r.is_file() else sorted(x for x in r.rglob('*') if x.is_file()):
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope='module')
def w(tmp_path_factory):
    "Two small synthetic datasets (seeds 42 and 1) and a model trained on the first."
    d = tmp_path_factory.mktemp('safety')
    for seed in (42, 1):
        r = run('recsys-synth', '--out', d / f'd{seed}', '--seed', seed, '--sessions', 300)
        assert r.returncode == 0, r.stderr
    r = run('recsys-train', '--data', d / 'd42', '--out', d / 'm42', *TRAIN_FAST)
    assert r.returncode == 0, r.stderr
    (d / 'foreign').mkdir()
    (d / 'foreign' / 'notes.txt').write_text('a week of work\n')
    (d / 'report.json').write_text('{"mine": true}\n')
    (d / 'a_dir').mkdir()
    ro = d / 'ro'
    ro.mkdir()
    os.chmod(ro, 0o555)
    # root writes anywhere: then a path under /proc (no folder can be made there) plays the read-only folder
    d_ro = ro if os.geteuid() != 0 else Path('/proc/recsys-read-only')
    return d, d_ro


def cases(d, ro):
    "(command, args, exit status, words the last stderr line must hold, paths that must stay byte-identical)."
    m, d42, d1 = d / 'm42', d / 'd42', d / 'd1'
    url = 'http://127.0.0.1:9'  # never contacted: the output checks come first
    return [
        # wrong input that went unnoticed
        (
            'recsys-predict',
            ['--data', d1, '--model', m, '--out', d / 'p1.json'],
            2,
            ['trained on', 'd42', 'd1', '--allow-mismatch'],
            [m, d1],
        ),
        # silent overwrites
        (
            'recsys-predict',
            ['--data', d42, '--model', m, '--out', d42 / 'test.parquet'],
            2,
            ['--out', 'one of the inputs'],
            [d42],
        ),
        (
            'recsys-predict',
            ['--data', d42, '--model', m, '--out', d / 'report.json'],
            2,
            ['report.json', '--force'],
            [d / 'report.json'],
        ),
        ('recsys-synth', ['--out', d / 'foreign', '--sessions', 100], 2, ['foreign', '--force'], [d / 'foreign']),
        (
            'recsys-train',
            ['--data', d42, '--out', d / 'foreign', *TRAIN_FAST],
            2,
            ['foreign', '--force'],
            [d / 'foreign'],
        ),
        ('recsys-train', ['--data', d42, '--out', d42, *TRAIN_FAST], 2, ['one of the inputs'], [d42]),
        ('recsys-ingest', ['aggregate', d42 / 'train.parquet', '--out', m], 2, ['m42', '--force'], [m]),
        (
            'recsys-ingest',
            ['convert-products', d / 'foreign' / 'notes.txt', '--trust', '--out', d / 'report.json'],
            2,
            ['report.json', '--force'],
            [d / 'report.json'],
        ),
        (
            'recsys-users',
            ['--base-url', url, '--out', d42 / 'users.parquet'],
            2,
            ['users_entries.parquet', '--force'],
            [d42],
        ),
        (
            'recsys-reports',
            ['--data', d42, '--out', d / 'foreign', '--no-screenshot'],
            2,
            ['foreign', '--force'],
            [d / 'foreign'],
        ),
        ('recsys-spark', ['--data', d42, '--out', d / 'foreign'], 2, ['foreign', '--force'], [d / 'foreign']),
        # --out in a folder that cannot be written: all writers, before any work
        ('recsys-synth', ['--out', ro / 's', '--sessions', 100], 2, ['cannot write', '--out'], []),
        ('recsys-train', ['--data', d42, '--out', ro / 'm', *TRAIN_FAST], 2, ['cannot write', '--out'], [d42]),
        ('recsys-predict', ['--data', d42, '--model', m, '--out', ro / 'p.json'], 2, ['cannot write', '--out'], [m]),
        ('recsys-ingest', ['aggregate', d42 / 'train.parquet', '--out', ro / 'X'], 2, ['cannot write', '--out'], [d42]),
        ('recsys-users', ['--base-url', url, '--out', ro / 'users.parquet'], 2, ['cannot write', '--out'], []),
        ('recsys-reports', ['--data', d42, '--out', ro / 'run', '--no-screenshot'], 2, ['cannot write', '--out'], []),
        ('recsys-spark', ['--data', d42, '--out', ro / 'sp'], 2, ['cannot write', '--out'], []),
        # --out naming an existing folder where a file is written
        ('recsys-predict', ['--data', d42, '--model', m, '--out', d / 'a_dir'], 2, ['existing folder', '--out'], []),
        ('recsys-users', ['--base-url', url, '--out', d / 'a_dir'], 2, ['existing folder', '--out'], []),
        # bad values: argparse's one line naming the flag
        ('recsys-synth', ['--seed', -1, '--out', d / 'never'], 2, ['--seed'], []),
        ('recsys-train', ['--data', d42, '--out', d / 'never', '--seed', -1], 2, ['--seed'], []),
        ('recsys-train', ['--data', d42, '--out', d / 'never', '--factors', 0], 2, ['--factors'], []),
        (
            'recsys-train',
            ['--data', d42, '--out', d / 'never', '--val-day', '2024-13-01'],
            2,
            ['--val-day', 'YYYY-MM-DD'],
            [],
        ),
        ('recsys-predict', ['--data', d42, '--model', m, '--scale', 'huge'], 2, ['--scale'], []),
        ('recsys-ingest', ['aggregate', d42, '--out', d / 'X'], 2, ['is a folder', 'train.parquet'], [d42]),
    ]


def _ids(d=Path('D'), ro=Path('RO')):
    return [f"{c[0]}-{i}" for i, c in enumerate(cases(d, ro))]


@pytest.mark.parametrize('i', range(len(cases(Path('D'), Path('RO')))), ids=_ids())
def test_refused_with_one_line_and_nothing_touched(w, i):
    d, ro = w
    script, args, code, words, keep = cases(d, ro)[i]
    before = snapshot(*keep)
    r = run(script, *args)
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert 'Traceback' not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert 'error' in last and all(x in last for x in map(str, words)), last
    assert snapshot(*keep) == before  # byte-identical
    assert not (d / 'never').exists()


def test_every_command_has_version_and_defaults_in_help():
    for script in (
        'recsys-synth',
        'recsys-train',
        'recsys-predict',
        'recsys-ingest',
        'recsys-users',
        'recsys-users-serve',
        'recsys-reports',
        'recsys-spark',
    ):
        r = run(script, '--version')
        assert r.returncode == 0 and re.search(r'\d+\.\d+', r.stdout), (script, r.stdout, r.stderr)
        h = run(script, '--help').stdout
        if script != 'recsys-ingest':
            assert re.search(r'--seed SEED\s+.*default', ' '.join(h.split())), (script, h)
    r = run(
        'recsys-reports',
        '--dataset',
        'synthetic',
        '--scale',
        'tiny',
        '--dry-run',
        '--grid',
        '{"04_als": {"factors": [4, 8]}}',
    )
    assert r.returncode == 0 and 'factors' in r.stdout, r.stderr  # the old spelling, and --grid as its help shows it


def test_predict_counts_unknown_sessions_and_train_says_what_it_used(w, tmp_path):
    d, _ = w
    alien = tmp_path / 'alien'
    shutil.copytree(d / 'd1', alien)  # a test whose products the model has never seen
    t = pd.read_parquet(alien / 'test.parquet')
    t['partnumber'] += 10_000_000
    t.to_parquet(alien / 'test.parquet', index=False)
    r = run('recsys-predict', '--data', alien, '--model', d / 'm42', '--out', tmp_path / 'p.json', '--allow-mismatch')
    assert r.returncode == 0, r.stderr
    assert re.search(r'warning: \d+ of \d+ test sessions view no item the model knows', r.stderr), r.stderr
    alien_n = int(re.search(r'(\d+) sessions with no known item, [\d.]+% served by popularity', r.stdout).group(1))
    r = run(
        'recsys-predict', '--data', d / 'd42', '--model', d / 'm42', '--out', tmp_path / 'p.json'
    )  # its own file: replaced
    assert r.returncode == 0, r.stderr
    own_n = int(re.search(r'(\d+) sessions with no known item', r.stdout).group(1))
    assert alien_n == 40 and own_n <= alien_n // 5, (
        alien_n,
        own_n,
    )  # a 300-session model misses a few products of its own test
    part = tmp_path / 'part'
    part.mkdir()
    shutil.copy(d / 'd42' / 'train.parquet', part)
    shutil.copy(d / 'd42' / 'test.parquet', part)
    r = run('recsys-train', '--data', part, '--out', tmp_path / 'm', '--scale', 'small', *TRAIN_FAST)
    assert r.returncode == 0, r.stderr
    assert (
        'products: MISSING' in r.stderr and 'users: MISSING' in r.stderr and '--scale small is ignored' in r.stderr
    ), r.stderr


def test_synth_and_train_replace_their_own_output_whole(w, tmp_path):
    d, _ = w
    out = tmp_path / 's'
    assert run('recsys-synth', '--out', out, '--sessions', 100, '--format', 'csv').returncode == 0
    assert run('recsys-synth', '--out', out, '--sessions', 100, '--seed', 3).returncode == 0
    assert (
        not list(out.glob('*.csv')) and json.loads((out / 'manifest.json').read_text())['seed'] == 3
    )  # no stale files
    m = tmp_path / 'm'
    shutil.copytree(d / 'm42', m)
    (m / 'segments' / 'stale.txt').write_text('old')
    r = run('recsys-train', '--data', d / 'd42', '--out', m, '--no-tune', '--factors', 8, '--iterations', 2)
    assert r.returncode == 0, r.stderr
    assert not (m / 'segments' / 'stale.txt').exists() and (m / 'manifest.json').exists()


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _serve(data, port=0):
    p = subprocess.Popen(
        [str(BIN / 'recsys-users-serve'), '--data', str(data), '--port', str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    line = p.stdout.readline()
    m = re.search(r'http://127\.0\.0\.1:\d+', line)
    assert m, (line, p.stderr.read() if p.poll() is not None else '')
    return p, m.group(0), line


def test_users_serve_port_in_use_and_entries_csv(tmp_path):
    from recsys.users_api import demo_users

    users = demo_users(30, seed=3)
    assert (users.groupby('user_id').size() > 1).any()  # some users have several entries
    users.to_csv(tmp_path / 'users_entries.csv', index=False)
    users[users.entry == 0].drop(columns='entry').to_csv(tmp_path / 'users.csv', index=False)
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = run('recsys-users-serve', '--data', tmp_path, '--port', port, timeout=30)
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr
    assert '--port' in r.stderr.strip().splitlines()[-1] and str(port) in r.stderr, r.stderr
    p, url, line = _serve(tmp_path)
    try:
        assert f"serving {users.user_id.nunique():,} users" in line
        uid = int(users.groupby('user_id').size().idxmax())
        with urllib.request.urlopen(f'{url}/users/{uid}', timeout=10) as resp:
            body = json.load(resp)
        assert len(body['values']['country']) == int((users.user_id == uid).sum()) > 1, body
    finally:
        p.terminate()
        p.wait(10)


def test_users_refuses_another_servers_checkpoint_and_keeps_its_output(tmp_path):
    from recsys.users_api import demo_users

    a, b = tmp_path / 'a', tmp_path / 'b'
    a.mkdir()
    b.mkdir()
    demo_users(60, seed=4).to_parquet(a / 'users_entries.parquet')
    demo_users(10, seed=5).to_parquet(b / 'users_entries.parquet')
    out = tmp_path / 'data' / 'users.parquet'
    pa_, url_a, _ = _serve(a)
    try:
        r = run('recsys-users', '--base-url', url_a, '--out', out, '--timeout', 5)
    finally:
        pa_.terminate()
        pa_.wait(10)
    assert r.returncode == 0, r.stderr
    assert {p.name for p in out.parent.iterdir()} >= {
        'users.parquet',
        'users_entries.parquet',
    }  # the data-folder layout
    before = snapshot(out.parent)
    pb, url_b, _ = _serve(b)
    try:
        r = run('recsys-users', '--base-url', url_b, '--out', out, '--timeout', 5)
    finally:
        pb.terminate()
        pb.wait(10)
    assert r.returncode == 2 and 'Traceback' not in r.stderr and '--force' in r.stderr, r.stderr
    assert snapshot(out.parent) == before
    # the server dies: nothing final is written, the earlier output stays
    r = run(
        'recsys-users',
        '--base-url',
        url_a,
        '--out',
        out,
        '--timeout',
        1,
        '--max-attempts',
        2,
        '--backoff-base',
        0.01,
        '--ids',
        _ids_file(tmp_path),
    )
    assert r.returncode == 1 and 'no output was written' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert {
        k: v for k, v in snapshot(out.parent).items() if 'users_entries.parquet' in k or k.endswith('/users.parquet')
    } == {k: v for k, v in before.items() if 'users_entries.parquet' in k or k.endswith('/users.parquet')}


def _ids_file(d):
    p = d / 'ids.txt'
    p.write_text('1000001\n1000002\n')
    return p


def test_ingest_check_into_a_closed_pipe():
    p = subprocess.Popen(
        [str(BIN / 'recsys-ingest'), 'check', '--data', 'synthetic-not-a-folder'],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    p.stdout.close()
    err = p.stderr.read().decode()
    p.wait(60)
    assert 'Traceback' not in err and p.returncode == 2, err


def _kill_mid_write(cmd, out: Path, tries: int = 6):
    """Run `cmd` (which replaces folder `out`) and SIGKILL it once its temporary sibling exists; True if caught
    mid-write."""
    for _ in range(tries):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        pat = f'.{out.name}.{p.pid}.'
        while p.poll() is None:
            if any(n.startswith(pat) for n in os.listdir(out.parent)):
                p.send_signal(signal.SIGKILL)
                p.wait(10)
                return True
        # finished before it could be caught: try again
    return False


@pytest.mark.parametrize('what', ['train', 'synth'])
def test_sigkill_mid_write_leaves_the_previous_output_intact(w, tmp_path, what):
    d, _ = w
    if what == 'train':
        out = tmp_path / 'model'
        shutil.copytree(d / 'm42', out)
        cmd = [str(BIN / 'recsys-train'), '--data', str(d / 'd1'), '--out', str(out), *TRAIN_FAST]
    else:
        out = tmp_path / 'syn'
        shutil.copytree(d / 'd1', out)
        cmd = [str(BIN / 'recsys-synth'), '--out', str(out), '--sessions', '3000', '--seed', '7']
    before = snapshot(out)
    assert _kill_mid_write(cmd, out), 'never caught it writing'
    assert snapshot(out) == before  # the previous output, byte for byte
    leftovers = [n for n in os.listdir(tmp_path) if n.startswith(f'.{out.name}.')]
    assert leftovers  # the killed run's temporary is there...
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr
    assert not [n for n in os.listdir(tmp_path) if n.startswith(f'.{out.name}.')]  # ...and the next run removes it
    assert snapshot(out) != before
