from __future__ import annotations

from labelstack_tools.datasets.importer import task_key
from labelstack_tools.datasets.metadata import match, parse


def test_csv_rows_keyed_by_file_name_with_bad_rows_reported_by_line():
    text = "file,designer,season\nlook-01.jpg,Ann Demeulemeester,SS24\n,Nobody,FW23\nlook-02.jpg,Rick,FW23,extra\nlook-01.jpg,Dup,SS25\nlook-03.jpg,Dries,\n"
    meta = parse("meta.csv", text)
    assert meta.rows == {
        "look-01.jpg": {"designer": "Ann Demeulemeester", "season": "SS24"},
        "look-03.jpg": {"designer": "Dries"},
    }
    assert [(p.line, p.reason.split(" ")[0]) for p in meta.problems] == [
        (3, "no"),
        (4, "more"),
        (5, "look-01.jpg"),
    ]


def test_jsonl_with_broken_lines():
    text = (
        '{"file": "a.jpg", "collection": "Resort"}\n{oops\n[1]\n\n{"name": "b/c.jpg", "n": 2}\n{"other": 1}\n'
    )
    meta = parse("meta.jsonl", text)
    assert meta.rows == {"a.jpg": {"collection": "Resort"}, "b/c.jpg": {"n": 2}}
    assert [p.line for p in meta.problems] == [2, 3, 6]


def test_csv_without_a_key_column_says_which_names_work():
    meta = parse("m.csv", "designer\nX\n")
    assert meta.rows == {} and "--key-column" in meta.problems[0].reason
    assert parse("m.csv", "photo,designer\nx.jpg,Y\n", key_column="photo").rows == {
        "x.jpg": {"designer": "Y"}
    }


def test_rows_match_by_path_or_unique_name():
    meta = parse("m.csv", "file,d\nss24/a.jpg,1\nb.jpg,2\nc.jpg,3\nmissing.jpg,4\n")
    found, problems = match(["ss24/a.jpg", "fw23/b.jpg", "x/c.jpg", "y/c.jpg"], meta)
    assert found == {"ss24/a.jpg": {"d": "1"}, "fw23/b.jpg": {"d": "2"}}
    assert [(p.line, p.reason) for p in problems] == [
        (4, "c.jpg matches 2 images; use its path"),
        (5, "no image missing.jpg in the source"),
    ]


def test_task_keys_for_bucket_and_folder_sources():
    assert task_key("gs://arch/ss24/a.jpg", "gs://arch/ss24") == "a.jpg"
    assert task_key("gs://arch/ss24/x/a.jpg", "gs://arch/ss24/") == "x/a.jpg"
    assert task_key("gs://other/ss24/a.jpg", "gs://arch/ss24") is None
    assert task_key("gs://arch/a.jpg", "gs://arch") == "a.jpg"
    assert (
        task_key("http://ls:8080/data/local-files/?d=photos/runway/a.jpg", "/srv/data/photos/runway")
        == "a.jpg"
    )
    assert task_key("/data/local-files/?d=elsewhere/a.jpg", "/srv/data/photos") is None
