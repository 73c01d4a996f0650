"""An SDK id generator that hands out the ids of the message whose span is being started.

A bollydog message already carries a W3C trace context (``trace_id``, ``span_id``), and other
processes, HTTP clients and log lines know it by those ids. So the span of a handler execution
must have exactly these ids: the tracing middleware puts them in :data:`pending_ids` just before
``tracer.start_span`` and takes them out right after; the SDK asks this generator for the ids
in between. Any other span (a user's own, an instrumentation's) gets random ids.
"""

from __future__ import annotations

import random

from opentelemetry.sdk.trace.id_generator import IdGenerator

from bollydog.telemetry.tracing import pending_ids

_random_bits = random.getrandbits


class MessageIdGenerator(IdGenerator):
    """Returns the pending message's ids when there are some, else random ones."""

    def generate_span_id(self) -> int:
        ids = pending_ids.get()
        if ids is not None:
            return ids[1]
        return _random_bits(64) or 1

    def generate_trace_id(self) -> int:
        ids = pending_ids.get()
        if ids is not None:
            return ids[0]
        return _random_bits(128) or 1

    def is_trace_id_random(self) -> bool:
        return True  # message trace ids are 128 random bits too
