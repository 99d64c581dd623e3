"""nbdev 2 style setup.py: every setting comes from settings.ini.

Unlike nbdev's template it does not import `pkg_resources` (current setuptools
no longer ships it); `packaging.version` does the version check.
"""
import shlex
from configparser import ConfigParser

import setuptools
from packaging.version import parse

assert parse(setuptools.__version__) >= parse('64'), 'setuptools >= 64 is needed'

config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

expected = ('version description keywords author author_email license status '
            'min_python audience language lib_name lib_path git_url').split()
missing = [o for o in expected if o not in cfg]
assert not missing, f'settings.ini is missing {missing}'

licenses = {'apache2': 'Apache-2.0'}  # SPDX expressions
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable',
            '6 - Mature', '7 - Inactive']
lic = licenses.get(cfg['license'].lower(), cfg['license'])
py_versions = '3.11 3.12 3.13'.split()
min_python = cfg['min_python']


def reqs(key):
    return shlex.split(cfg.get(key, '') or '')


setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    description=cfg['description'],
    keywords=cfg['keywords'],
    author=cfg['author'],
    author_email=cfg['author_email'],
    license=lic,
    classifiers=['Development Status :: ' + statuses[int(cfg['status'])],
                 'Intended Audience :: ' + cfg['audience'].title(),
                 'Natural Language :: ' + cfg['language'].title()]
                + ['Programming Language :: Python :: ' + v for v in py_versions[py_versions.index(min_python):]],
    url=cfg['git_url'],
    packages=setuptools.find_packages(include=[cfg['lib_path'], cfg['lib_path'] + '.*']),
    include_package_data=True,
    install_requires=reqs('requirements'),
    extras_require={'dev': reqs('dev_requirements'), 'spark': reqs('spark_requirements')},
    python_requires='>=' + min_python,
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points={
        'console_scripts': cfg.get('console_scripts', '').split(),
        'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"],
    },
)
