"""Request/reply details of the Redis transport that the contract suite does not pin down."""

from tests.distribute.conftest import process


async def test_a_lone_surrogate_in_text_crosses_processes_as_an_escape(redis_url, prefix):
    from tests.distribute.calc_handlers import Record

    async with process(redis_url, prefix, ["calc"]), process(redis_url, prefix, []) as caller:
        # UTF-8 cannot hold a lone surrogate; JSON's \u escape can: the text arrives whole.
        assert await caller.execute(Record(tag="a\ud800b é")) == "a\ud800b é"
