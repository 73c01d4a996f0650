"""Request/reply details of the Redis transport that the contract suite does not pin down."""

from tests.distribute.conftest import process


async def test_a_lone_surrogate_in_text_crosses_processes_as_an_escape(redis_url, prefix):
    from tests.distribute.calc_handlers import Record

    async with process(redis_url, prefix, ["calc"]), process(redis_url, prefix, []) as caller:
        # UTF-8 cannot hold a lone surrogate; JSON's \u escape can: the text arrives whole.
        assert await caller.execute(Record(tag="a\ud800b é")) == "a\ud800b é"


async def test_a_result_json_cannot_hold_reads_as_it_does_in_one_process(redis_url, prefix):
    """The wire encodes results as every entrypoint does (``str()`` of what JSON cannot hold,
    NaN as null), so a split deployment answers as the monolith does."""
    from tests.distribute.calc_handlers import Odd

    async with process(redis_url, prefix, ["calc"]), process(redis_url, prefix, []) as caller:
        assert await caller.execute(Odd()) == {"label": "label x", "ratio": None}
