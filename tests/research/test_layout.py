"""research/ sits beside the package: the package never imports it, and its
modules import each other without a cycle (report -> ufm_report -> pages)."""
import ast
import glob
import os.path as osp

from helpers import REPO_ROOT


def _imports(path, package, inside=False):
    """The modules of ``package`` that the file at ``path`` imports, at
    module level or inside functions (``inside``: the file is a top-level
    module of ``package``, so its relative imports are too)."""
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding='utf-8').read())):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from .x import y / from . import y
                if not inside:
                    continue
                names = [node.module] if node.module else \
                    [alias.name for alias in node.names]
                found.update(f'{package}.{n}' for n in names)
            elif node.module and node.module.split('.')[0] == package:
                found.add(node.module)
                found.update(f'{node.module}.{alias.name}'
                             for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names
                         if alias.name.split('.')[0] == package)
    return found


def test_research_modules_import_without_a_cycle():
    files = glob.glob(osp.join(REPO_ROOT, 'research', '*.py'))
    modules = {
        f'research.{osp.splitext(osp.basename(f))[0]}': f
        for f in files if not f.endswith('__init__.py')
    }
    graph = {name: _imports(path, 'research', inside=True) & set(modules)
             for name, path in modules.items()}
    assert 'research.ufm_report' in graph['research.report']

    def cycle_from(node, stack):
        if node in stack:
            return stack[stack.index(node):] + [node]
        for nxt in sorted(graph[node]):
            found = cycle_from(nxt, stack + [node])
            if found:
                return found
        return None

    for name in sorted(graph):
        cycle = cycle_from(name, [])
        assert cycle is None, ' -> '.join(cycle)


def test_the_package_does_not_import_research_code():
    offenders = [
        osp.relpath(path, REPO_ROOT)
        for path in glob.glob(osp.join(REPO_ROOT, 'etf_plugin', '**', '*.py'),
                              recursive=True)
        if _imports(path, 'research')
    ]
    assert not offenders
    assert not osp.exists(osp.join(REPO_ROOT, 'etf_plugin', 'analysis'))
    assert not osp.exists(osp.join(REPO_ROOT, 'etf_plugin', 'det',
                                   'benchmark.py'))
