"""CI (.ci/run) runs what the documentation tells a user to run: the README's quick start as
written and in its order, every other command documented (README.md or docs/*.md), every test
path it names present, every stage run (no budget that skips or stops one)."""
import glob
import os.path as osp
import re

from helpers import ROOT


def _ci():
    return open(osp.join(ROOT, '.ci', 'run')).read()


def _docs():
    return '\n'.join(open(p).read() for p in [osp.join(ROOT, 'README.md'),
                                               *sorted(glob.glob(osp.join(ROOT, 'docs', '*.md')))])


def _commands(text):
    """``(start, command)`` for each ``bash tools/...`` command of a script, with its
    ``VAR=value`` / ``env VAR=value`` prefix and its arguments, comments dropped."""
    found = []
    for m in re.finditer(r'^[^#\n]*?((?:(?:env )?[A-Z_]+=\S+ )*bash tools/[^\s;|&]+[^#\n]*)', text,
                         re.M):
        cmd = re.sub(r'\s*(\|\||&&|>|\|).*$', '', m.group(1)).strip()
        found.append((m.start(1), re.sub(r'^env ', '', cmd)))
    return found


def test_readme_quickstart_is_what_ci_runs():
    readme = open(osp.join(ROOT, 'README.md')).read()
    block = re.search(r'## Quick start.*?```bash\n(.*?)```', readme, re.S).group(1)
    quickstart = [line.split('#')[0].strip() for line in block.splitlines() if line.strip()]
    assert len(quickstart) == 2, quickstart
    ci = _ci()
    commands = _commands(ci)
    # the two commands as written (no argument added), the first before the second
    where = [[pos for pos, cmd in commands if cmd == want] for want in quickstart]
    assert all(where), f'.ci/run must run {quickstart} as written: {commands}'
    assert min(where[0]) < max(where[1]), f'.ci/run must run {quickstart} in this order'
    # the other stages: the OneDL set-up and tests, the deployment set-up and step
    for script in ('STACK=onedl bash tools/setup_env.sh', 'STACK=onedl bash tools/run_tests.sh',
                   'bash tools/deploy/setup_deploy_env.sh', 'bash tools/deploy/ci_deploy.sh'):
        assert any(cmd.startswith(script) for _, cmd in commands), f'.ci/run does not run {script}'
    docs = _docs()
    for _, cmd in commands:   # each documented, as a user would type it (arguments aside)
        stem = re.match(r'((?:[A-Z_]+=\S+ )*bash tools/\S+)', cmd).group(1)
        assert stem in docs, f'.ci/run runs {cmd!r}; README.md and docs/*.md do not mention {stem!r}'
    assert 'set -euo pipefail' in ci


def test_ci_runs_every_stage():
    """No budget: every stage runs and any failure fails CI (exit 1 at the end)."""
    ci = _ci()
    for gone in ('CI_BUDGET_S', 'NOT RUN', 'STOPPED', 'timeout '):
        assert gone not in ci, f'.ci/run still has {gone!r}'
    assert re.search(r'\(\( \$\{#FAILED\[@\]\} \)\).*\n.*\n\s*exit 1', ci), 'CI must exit 1 on a failure'


def test_ci_test_paths_exist():
    """The test paths .ci/run names (the OneDL subset) are there: a moved test file would make
    pytest stop with 'file or directory not found' on the OneDL stack only."""
    paths = re.findall(r'\btests/[\w/.]+', _ci())
    assert paths
    for rel in paths:
        assert osp.exists(osp.join(ROOT, rel)), f'.ci/run names {rel}, which does not exist'
