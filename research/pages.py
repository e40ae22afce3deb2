"""Generated pages: a template of ``templates/`` with its ``{{blocks}}``
filled in, written to docs/. Shared by :mod:`research.report` and
:mod:`research.ufm_report`."""
import os.path as osp
import re
from typing import Dict

TEMPLATES = osp.join(osp.dirname(osp.abspath(__file__)), 'templates')


def fill(template: str, blocks: Dict[str, str]) -> str:
    """Replace every ``{{name}}`` of a template; a missing or unused block is
    an error, so the pages and the code cannot drift apart."""
    names = set(re.findall(r'\{\{(\w+)\}\}', template))
    missing = names - set(blocks)
    unused = set(blocks) - names
    if missing or unused:
        raise KeyError(f'template blocks missing: {sorted(missing)}, '
                       f'unused: {sorted(unused)}')
    return re.sub(r'\{\{(\w+)\}\}', lambda m: blocks[m.group(1)].strip(),
                  template)


def template(name: str) -> str:
    """The text of ``templates/<name>``."""
    with open(osp.join(TEMPLATES, name), encoding='utf-8') as f:
        return f.read()


def write(path: str, text: str) -> None:
    """Write a page, ending it with one newline."""
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text if text.endswith('\n') else text + '\n')
