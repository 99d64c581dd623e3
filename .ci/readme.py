#!/usr/bin/env python3
"""README.md is generated from nbs/index.ipynb (nbdev's readme_nb), without Quarto.

python .ci/readme.py --write   regenerate README.md
python .ci/readme.py --check   fail if README.md is not what index.ipynb says
"""

import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NB, README = ROOT / 'nbs' / 'index.ipynb', ROOT / 'README.md'
HEADER = '<!-- generated from nbs/index.ipynb by `make readme`: edit the notebook, not this file -->\n\n'


def render() -> str:
    cells = json.loads(NB.read_text(encoding='utf-8'))['cells']
    parts = []
    for c in cells:
        src = ''.join(c['source']) if isinstance(c['source'], list) else c['source']
        if c['cell_type'] == 'markdown':
            parts.append(src.strip())
        elif c['cell_type'] == 'code':
            lines = src.splitlines()
            if any(l.strip() in ('#| hide', '#|hide') for l in lines):
                continue
            body = '\n'.join(l for l in lines if not l.startswith('#|')).strip()
            if body:
                parts.append(f'```python\n{body}\n```')
    return HEADER + '\n\n'.join(parts) + '\n'


if __name__ == '__main__':
    text = render()
    if '--write' in sys.argv:
        README.write_text(text, encoding='utf-8')
        print('README.md written')
    elif README.exists() and README.read_text(encoding='utf-8') == text:
        print('README.md in sync with nbs/index.ipynb')
    else:
        print('FAIL: README.md differs from nbs/index.ipynb: run `make readme` and commit')
        sys.exit(1)
