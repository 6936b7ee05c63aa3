"""Task and prediction loading: every SWE-bench form, and one-line errors naming
the file, row and field."""

from __future__ import annotations

import json

import pytest

from swerve.errors import TaskFormatError
from swerve.harness.tasks import load_predictions, load_tasks

ROW = {"instance_id": "o__r-1", "repo": "o/r", "base_commit": "abc", "patch": "P", "test_patch": "T",
       "FAIL_TO_PASS": '["t.py::test_a"]', "PASS_TO_PASS": "[]"}


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_with_json_string_lists(tmp_path):
    tasks = load_tasks(_jsonl(tmp_path / "t.jsonl", [ROW, {**ROW, "instance_id": "o__r-2", "FAIL_TO_PASS": ["x"]}]))
    assert [t.instance_id for t in tasks] == ["o__r-1", "o__r-2"]
    assert tasks[0].FAIL_TO_PASS == ["t.py::test_a"] and tasks[1].FAIL_TO_PASS == ["x"]
    assert tasks[0].repo_source == "https://github.com/o/r.git"


def test_json_list_and_parquet(tmp_path):
    (tmp_path / "t.json").write_text(json.dumps([ROW]))
    assert load_tasks(tmp_path / "t.json")[0].instance_id == "o__r-1"
    import pandas as pd

    pd.DataFrame([ROW, {**ROW, "instance_id": "o__r-9"}]).to_parquet(tmp_path / "t.parquet")
    assert [t.instance_id for t in load_tasks(tmp_path / "t.parquet")] == ["o__r-1", "o__r-9"]


def test_fixture_tasks_load(toolz_tasks):
    assert len(toolz_tasks) == 3
    for task in toolz_tasks.values():
        assert task.repo_source == "pypi:toolz==0.12.1" and task.base_patch and task.FAIL_TO_PASS


def test_bad_row_names_file_row_and_field(tmp_path):
    path = _jsonl(tmp_path / "bad.jsonl", [ROW, {**ROW, "instance_id": "o__r-2", "FAIL_TO_PASS": "not json"}])
    with pytest.raises(TaskFormatError) as info:
        load_tasks(path)
    message = str(info.value)
    assert str(path) in message and "line 2" in message and "FAIL_TO_PASS" in message and "\n" not in message


def test_missing_field_and_broken_json_line(tmp_path):
    row = dict(ROW)
    del row["repo"]
    with pytest.raises(TaskFormatError, match=r"line 1.*'repo'"):
        load_tasks(_jsonl(tmp_path / "a.jsonl", [row]))
    (tmp_path / "b.jsonl").write_text(json.dumps(ROW) + "\n{oops\n")
    with pytest.raises(TaskFormatError, match=r"b.jsonl:2: not valid JSON"):
        load_tasks(tmp_path / "b.jsonl")


def test_duplicates_and_unknown_ids_are_errors(tmp_path):
    with pytest.raises(TaskFormatError, match="duplicate instance_id 'o__r-1'"):
        load_tasks(_jsonl(tmp_path / "d.jsonl", [ROW, ROW]))
    path = _jsonl(tmp_path / "t.jsonl", [ROW, {**ROW, "instance_id": "o__r-2"}])
    assert [t.instance_id for t in load_tasks(path, instance_ids=["o__r-2"])] == ["o__r-2"]
    with pytest.raises(TaskFormatError, match="nope"):
        load_tasks(path, instance_ids=["nope"])


def test_missing_file_is_named(tmp_path):
    with pytest.raises(TaskFormatError, match="no such file"):
        load_tasks(tmp_path / "missing.jsonl")


def test_prediction_forms(tmp_path):
    preds = [{"instance_id": "a", "model_name_or_path": "m", "model_patch": "diff"},
             {"instance_id": "b", "model_name_or_path": "m", "model_patch": None}]
    _jsonl(tmp_path / "p.jsonl", preds)
    (tmp_path / "l.json").write_text(json.dumps(preds))
    (tmp_path / "d.json").write_text(json.dumps({p["instance_id"]: p for p in preds}))
    (tmp_path / "k.json").write_text(json.dumps({"a": {"model_patch": "diff"}}))
    for name in ("p.jsonl", "l.json", "d.json"):
        loaded = load_predictions(tmp_path / name)
        assert loaded["a"].model_patch == "diff" and loaded["b"].model_patch is None
    assert load_predictions(tmp_path / "k.json")["a"].model_patch == "diff"


def test_gold_and_empty_predictions(toolz_tasks):
    tasks = list(toolz_tasks.values())
    gold = load_predictions("gold", tasks)
    assert all(gold[t.instance_id].model_patch == t.patch for t in tasks)
    assert all(p.model_patch == "" for p in load_predictions("empty", tasks).values())
    with pytest.raises(TaskFormatError, match="need the tasks"):
        load_predictions("gold")


def test_bad_prediction_rows(tmp_path):
    _jsonl(tmp_path / "p.jsonl", [{"model_patch": "x"}])
    with pytest.raises(TaskFormatError, match=r"line 1.*instance_id"):
        load_predictions(tmp_path / "p.jsonl")
    _jsonl(tmp_path / "q.jsonl", [{"instance_id": "a"}, {"instance_id": "a"}])
    with pytest.raises(TaskFormatError, match="duplicate prediction"):
        load_predictions(tmp_path / "q.jsonl")


def test_bytes_that_are_not_utf8_name_file_line_and_field(tmp_path):
    good = json.dumps(ROW).encode()
    bad = json.dumps({**ROW, "instance_id": "o__r-2", "hints_text": "na\u00efve"}, ensure_ascii=False).encode("latin-1")
    (tmp_path / "t.jsonl").write_bytes(good + b"\n" + bad + b"\n")
    with pytest.raises(TaskFormatError, match=r"t.jsonl:2: not valid UTF-8 \(byte 0xef at column \d+, field 'hints_text'\)"):
        load_tasks(tmp_path / "t.jsonl")
    (tmp_path / "t.json").write_bytes(b"[\n" + good + b",\n" + bad + b"\n]\n")
    with pytest.raises(TaskFormatError, match=r"t.json:3: not valid UTF-8 .*field 'hints_text'"):
        load_tasks(tmp_path / "t.json")


def test_empty_sources_and_required_fields(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(TaskFormatError, match="empty.jsonl: holds no tasks"):
        load_tasks(tmp_path / "empty.jsonl")
    with pytest.raises(TaskFormatError, match="empty.jsonl: holds no predictions"):
        load_predictions(tmp_path / "empty.jsonl")
    rows = _jsonl(tmp_path / "t.jsonl", [ROW, {**ROW, "instance_id": "o__r-2", "FAIL_TO_PASS": "[]", "patch": ""}])
    assert len(load_tasks(rows)) == 2  # nothing required: listing, minting
    with pytest.raises(TaskFormatError, match=r"line 2 \(instance 'o__r-2'\): field 'FAIL_TO_PASS' is missing or empty"):
        load_tasks(rows, require=["FAIL_TO_PASS"])
    with pytest.raises(TaskFormatError, match=r"line 2 .*field 'patch'"):
        load_tasks(rows, require=["patch"])
    assert [t.instance_id for t in load_tasks(rows, instance_ids=["o__r-1"], require=["FAIL_TO_PASS", "patch"])] == [
        "o__r-1"]  # only the selected rows must have them


def test_iter_jsonl_skips_a_last_line_cut_inside_a_character(tmp_path):
    from swerve.fileio import iter_jsonl

    path = tmp_path / "records.jsonl"
    path.write_bytes(b'{"a": "\xc3\xa9"}\n{"b": "\xc3')
    assert list(iter_jsonl(path)) == [(1, {"a": "\u00e9"})]
    path.write_bytes(b'{"a": "\xe9"}\n{"b": 1}\n')
    with pytest.raises(ValueError, match=r"records.jsonl:1: not valid UTF-8 .*field 'a'"):
        list(iter_jsonl(path))
