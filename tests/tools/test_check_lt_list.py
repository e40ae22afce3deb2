
import pytest

from helpers import load_tool


TOOL = 'tools/data/check_lt_list.py'


@pytest.fixture
def data_root(tmp_path):
    # class 0: 120 images (many), class 1: 30 (medium), class 2: 3 (few)
    lines = []
    for label, num in enumerate([120, 30, 3]):
        folder = tmp_path / 'train' / f'c{label}'
        folder.mkdir(parents=True)
        for i in range(num):
            (folder / f'{i}.jpg').write_bytes(b'')
            lines.append(f'train/c{label}/{i}.jpg {label}')
    return tmp_path, lines


def test_clean_list(data_root, capsys):
    root, lines = data_root
    list_file = root / 'list.txt'
    list_file.write_text('\n'.join(lines) + '\n')
    rc = load_tool(TOOL).main(
        [str(list_file), '--data-root', str(root), '--num-classes', '3'])
    out = capsys.readouterr().out
    assert rc == 0
    assert '153 images with a valid label, 3 classes' in out
    assert 'max 120, min 3' in out
    rows = {line.split()[0]: line.split()[-2:] for line in out.splitlines()
            if line.split() and line.split()[0] in ('many', 'medium', 'few')}
    assert rows == dict(many=['1', '120'], medium=['1', '30'], few=['1', '3'])


def test_errors_exit_non_zero(data_root, capsys):
    root, lines = data_root
    lines += [
        'train/c1/missing.jpg 1',  # missing file
        'train/c0/0.jpg 7',  # label out of range
        'train/c0/1.jpg one',  # not an integer
        '/abs/path.jpg 0',  # absolute
    ]
    list_file = root / 'list.txt'
    list_file.write_text('\n'.join(lines) + '\n')
    tool = load_tool(TOOL)
    rc = tool.main(
        [str(list_file), '--data-root', str(root), '--num-classes', '4'])
    err = capsys.readouterr().err
    assert rc == 1
    assert 'missing file' in err and 'missing.jpg' in err
    assert 'label 7 >= --num-classes 4' in err
    assert 'not an integer' in err
    assert 'absolute path' in err
    assert '1 of 4 classes have no image' in err  # class 3: a warning
    # Without the file check only the list errors remain.
    rc = tool.main([str(list_file), '--data-root', str(root), '--skip-files'])
    err = capsys.readouterr().err
    assert rc == 1 and 'missing file' not in err


def test_warnings_alone_do_not_fail(data_root, capsys):
    root, lines = data_root
    list_file = root / 'list.txt'
    list_file.write_text('\n'.join(lines + lines[:1]) + '\n')  # a duplicate
    rc = load_tool(TOOL).main(
        [str(list_file), '--data-root', str(root), '--num-classes', '3'])
    assert rc == 0
    assert 'duplicate path train/c0/0.jpg' in capsys.readouterr().err


def run(tool, root, text, *extra):
    list_file = root / 'list.txt'
    if isinstance(text, bytes):
        list_file.write_bytes(text)
    else:
        list_file.write_text(text)
    return tool.main([str(list_file), '--data-root', str(root), *extra])


@pytest.mark.parametrize('text', ['', '\n'])
def test_empty_list_fails(tmp_path, capsys, text):
    rc = run(load_tool(TOOL), tmp_path, text)
    err = capsys.readouterr().err
    assert rc == 1
    assert 'no image in' in err and 'CustomDataset would refuse it' in err


def test_path_with_two_labels_fails(data_root, capsys):
    root, lines = data_root
    # line 1 is 'train/c0/0.jpg 0'; the same image again as class 2
    rc = run(load_tool(TOOL), root, '\n'.join(lines + ['train/c0/0.jpg 2']),
             '--num-classes', '3')
    err = capsys.readouterr().err
    assert rc == 1
    assert ('error: line 1: train/c0/0.jpg is listed with different labels: '
            f'line 1 (label 0), line {len(lines) + 1} (label 2)') in err
    assert 'duplicate path' not in err  # an error, not just the warning


def test_bom_is_not_part_of_the_first_path(data_root, capsys):
    root, lines = data_root
    text = ('\n'.join(lines) + '\n').encode('utf-8-sig')
    rc = run(load_tool(TOOL), root, text, '--num-classes', '3')
    out, err = capsys.readouterr()
    # the first image is found (no '\ufefftrain/c0/0.jpg'), all 153 count
    assert 'missing file' not in err and '\ufeff' not in err
    assert '153 images with a valid label' in out
    # ... but the mark itself is an error: CustomDataset would keep it
    assert rc == 1
    assert 'error: line 1: the file starts with a UTF-8 byte-order mark' in err


def test_missing_file_names_its_line(data_root, capsys):
    root, lines = data_root
    lines.insert(4, 'train/c1/missing.jpg 1')
    rc = run(load_tool(TOOL), root, '\n'.join(lines), '--num-classes', '3')
    err = capsys.readouterr().err
    assert rc == 1
    assert 'error: line 5: missing file ' in err and 'missing.jpg' in err


def test_non_utf8_line_names_its_line(data_root, capsys):
    root, lines = data_root
    text = ('\n'.join(lines[:2]) + '\n').encode() + b'train/\xff.jpg 0\n'
    rc = run(load_tool(TOOL), root, text, '--num-classes', '3')
    assert rc == 1
    assert 'error: line 3: not UTF-8' in capsys.readouterr().err
