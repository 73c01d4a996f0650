"""The docs are part of the product: every code block of README.md and docs/*.md that claims
to run is run here, one test per block (id: ``page:line:section.n``).

Contributors, in short (details in ``tests/docs_harness.py``):

* ``python``, ``yaml``, ``json`` and ``shell`` blocks run unless the line right before the
  fence is ``<!-- not run: why -->`` (a sketch with ``...``, a synopsis): an unmarked fragment
  fails, and so does a fence without a language. Output and trees are ``text`` blocks.
* The blocks of one page form one small project in a fresh folder, run in order: a block
  starting with ``# shop/handlers.py`` is that file; names carry over from block to block;
  ``async def test_*`` functions a block defines are called.
* ``<!-- run: serve=example/config.yaml -->`` runs a block (``curl`` lines, a WebSocket
  ``transcript``) against ``bollydog service``; ``shell=CONFIG`` runs python as typed into
  ``bollydog shell``; ``needs=redis`` skips without ``BOLLYDOG_TEST_REDIS_URL`` (fails with
  ``BOLLYDOG_REQUIRE_SERVICES=1``); ``needs=otlp`` sends to a receiver in the test;
  ``stub=mod`` adds an empty module the page names without showing it.
* Ports 8000/8001/4318 in a block become free ports; nothing touches a developer's servers.

A block that documents what the code should do but does not yet goes into ``KNOWN_FAILURES``
with the reason: it is a strict xfail, so the test fails once the code is fixed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.docs_harness import Block, Pages, collect, parse_markdown, shell_commands, _matches, _pattern

BLOCKS, PAGE_PROBLEMS = collect()

#: ``page:section.n`` -> why the code does not do what the block says yet.
KNOWN_FAILURES: dict[str, str] = {}


def _params() -> list[object]:
    params = []
    for block in BLOCKS:
        if not (block.kind or block.problems or block.runs):
            continue  # a ``text`` illustration: nothing claims to run
        marks = []
        if block.key in KNOWN_FAILURES:
            marks.append(pytest.mark.xfail(reason=KNOWN_FAILURES[block.key], strict=True))
        params.append(pytest.param(block, id=block.id, marks=marks))
    return params


@pytest.fixture(scope="module")
def pages() -> Iterator[Pages]:
    registry = Pages(BLOCKS)
    yield registry
    registry.close()


@pytest.mark.parametrize("block", _params())
def test_doc_block(block: Block, pages: Pages) -> None:
    assert not block.problems, f"{block.id}: " + "; ".join(block.problems)
    if block.not_run is not None:
        pytest.skip(f"not run: {block.not_run}")
    pages.run(block)


def test_markers_sit_right_before_a_fence() -> None:
    assert not PAGE_PROBLEMS, "\n".join(PAGE_PROBLEMS)


def test_known_failures_name_existing_blocks() -> None:
    keys = {b.key for b in BLOCKS}
    assert not set(KNOWN_FAILURES) - keys, f"stale KNOWN_FAILURES keys: {set(KNOWN_FAILURES) - keys}"


def test_every_page_is_collected() -> None:
    assert {"README.md", "docs/http.md", "docs/persistence.md"} <= {b.page for b in BLOCKS}


# -- the harness itself ----------------------------------------------------------------------------


def test_unmarked_fragment_is_collected_to_run_and_marked_one_is_not() -> None:
    text = "# T\n\n```python\nhandler(...)\n```\n\n<!-- not run: a sketch -->\n```python\nx = ...\n```\n"
    (unmarked, marked), problems = parse_markdown(text, "t.md")
    assert not problems
    assert unmarked.runs and unmarked.not_run is None
    assert not marked.runs and marked.not_run == "a sketch"
    assert unmarked.id == "t.md:3:t.1" and marked.key == "t.md:t.2"


def test_bad_fences_and_markers_are_reported() -> None:
    text = "## A b\n```\ntree\n```\n<!-- not run: stray -->\n\n```toml\nx = 1\n```\n<!-- run: nonsense=1 -->\n```yaml\na: 1\n```\n"
    (bare, toml, yaml), problems = parse_markdown(text, "t.md")
    assert bare.problems and toml.problems and yaml.problems
    assert problems == ["t.md:5: a run/not run marker must be the line right before a fence"]


def test_file_headers_and_shell_continuations() -> None:
    (block,), _ = parse_markdown("```python\n# shop/handlers.py\nx = 1\n```\n", "t.md")
    assert block.header == "shop/handlers.py"
    assert [c.split() for c in shell_commands("a \\\n  b\n\n# c\nd\n")] == [["a", "b"], ["#", "c"], ["d"]]


def test_transcript_patterns() -> None:
    pattern = _pattern('{"type": "accepted", "id": 1, "trace_id": "…", "tp": "00-…-01", "data": {…}}')
    assert _matches(pattern, {"type": "accepted", "id": 1, "trace_id": "ab", "tp": "00-x-y-01", "data": {}, "more": 2})
    assert not _matches(pattern, {"type": "accepted", "id": "1", "trace_id": "ab", "tp": "00-x-y-01", "data": {}})
    assert not _matches(pattern, {"type": "accepted", "id": 1, "trace_id": "ab", "tp": "01-x", "data": {}})
