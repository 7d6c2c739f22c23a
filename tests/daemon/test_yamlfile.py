"""YAML with a line for every value, and the files it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from facewatch.errors import BadInputError, ConfigError, GalleryError
from facewatch.yamlfile import MAX_YAML_BYTES, dotted, load_yaml, parse_yaml

DOC = """\
# a comment
threshold: 0.4
people:
  - id: ada
    images:
      - a.jpg
      - b.jpg

  - id: bob
    metadata: {team: lab}
    images: [c.jpg]
"""


def test_every_value_has_its_line(tmp_path: Path) -> None:
    doc = parse_yaml(DOC, tmp_path / "g.yaml")
    assert doc.data == {"threshold": 0.4, "people": [
        {"id": "ada", "images": ["a.jpg", "b.jpg"]},
        {"id": "bob", "metadata": {"team": "lab"}, "images": ["c.jpg"]}]}
    assert doc.lines[("threshold",)] == 2
    assert doc.lines[("people", 0)] == 4
    assert doc.lines[("people", 0, "images", 1)] == 7
    assert doc.lines[("people", 1)] == 9
    assert doc.lines[("people", 1, "metadata", "team")] == 10
    assert doc.lines[("people", 1, "images", 0)] == 11


def test_where_falls_back_to_the_deepest_known_part(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    doc = parse_yaml(DOC, path)
    assert doc.where(("people", 1, "images", 0)) == f"{path}:11"
    assert doc.where(("people", 1, "nickname")) == f"{path}:9"  # no such key: its entry's line
    assert doc.where(("cameras", 3)) == f"{path}:2"  # the document's own first line
    assert parse_yaml("", path).where(("people",)) == str(path)


def test_dotted() -> None:
    assert dotted(("people", 2, "images", 0)) == "people[2].images[0]"
    assert dotted(("cameras", 0, "url")) == "cameras[0].url"
    assert dotted((3,)) == "[3]"
    assert dotted(()) == ""


def test_empty_document_has_no_data(tmp_path: Path) -> None:
    assert parse_yaml("# only a comment\n", tmp_path / "g.yaml").data is None


@pytest.mark.parametrize("text, line, expected", [
    ("people:\n  - id: a\n    images: [a.jpg\n", 4, "malformed YAML"),
    ("people:\n\t- id: a\n", 2, "malformed YAML"),
    ("a: 1\n---\nb: 2\n", 2, "malformed YAML"),
    ("people: [a]\nthreshold: 1\npeople: [b]\n", 3, "people: duplicate key (first given on line 1"),
    ("people:\n  - id: a\n    id: b\n", 3, "people[0].id: duplicate key (first given on line 2"),
    ("when: !!timestamp nope\n", 1, "'nope' is not a valid timestamp"),
    ("a: 1\nlimit: !!int lots\n", 2, "'lots' is not a valid int"),
    ("ok: !!bool maybe\n", 1, "'maybe' is not a valid bool"),
    ("n: 1\nm: !!int\n", 2, "'' is not a valid int"),
    ("? !!float x\n: 1\n", 1, "'x' is not a valid float"),
    ("run: !!python/name:os.system x\n", 1, "could not determine a constructor"),
], ids=["unclosed", "tab", "two-documents", "duplicate-key", "duplicate-nested-key", "bad-timestamp",
        "bad-int", "bad-bool", "empty-int", "bad-key", "python-tag"])
def test_refusals_carry_the_line(tmp_path: Path, text: str, line: int, expected: str) -> None:
    path = tmp_path / "g.yaml"
    with pytest.raises(GalleryError) as info:
        parse_yaml(text, path, GalleryError)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: ")
    assert expected in message and "\n" not in message


def test_alias_that_contains_itself(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="an alias that contains itself"):
        parse_yaml("a: &a [*a]\n", tmp_path / "g.yaml")


def test_alias_bomb_is_refused(tmp_path: Path) -> None:
    """Ten levels of ten aliases each would be 10**10 nodes."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]")
    with pytest.raises(BadInputError, match="too many YAML aliases"):
        parse_yaml("\n".join(lines) + "\n", tmp_path / "g.yaml")


def test_a_few_aliases_are_fine(tmp_path: Path) -> None:
    doc = parse_yaml("base: &b [x.jpg]\npeople:\n  - id: a\n    images: *b\n", tmp_path / "g.yaml")
    assert doc.data["people"][0]["images"] == ["x.jpg"]


def test_file_errors_use_the_callers_error_type(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_yaml(tmp_path / "missing.yaml", ConfigError)
    with pytest.raises(GalleryError, match="is a directory"):
        load_yaml(tmp_path, GalleryError)
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("name: Jos\xe9\n".encode("latin-1"))
    with pytest.raises(GalleryError, match=r"not UTF-8 text \(invalid continuation byte at byte 9\)"):
        load_yaml(latin1, GalleryError)


def test_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as f:
        f.truncate(MAX_YAML_BYTES + 1)  # sparse: nothing is actually written
    with pytest.raises(GalleryError, match="is too large for a YAML file"):
        load_yaml(big, GalleryError)
