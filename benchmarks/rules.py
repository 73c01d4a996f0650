"""The Rete network against naive re-evaluation, measured in the same run.

    python benchmarks/rules.py [--facts 10000] [--rules 200] [--updates 2000] [--rounds 3]
                               [--curve 1000,10000,100000] [--cpu 0] [--write-docs]

Facts: ``--facts`` devices (labels ``env`` of prod/dev/staging and ``zone`` of z0..z19; spec
``temperature`` and ``site``) and 50 sites. Rules: ``--rules`` rules over devices of one zone
in ``env=prod`` above a temperature; a quarter join the device's site (``spec.site == $site``,
``key == $site``, the site open), a quarter hold only while no ``maintenance`` object names
the site (``not``), the rest have the one pattern. An update changes one random device's
temperature (seeded) and fires the agenda.

Rete: ``network.update(fact)`` + ``fire_all()``. Naive: ``NaiveMatcher.apply`` + ``fire()``,
which re-evaluates every rule against every object of the pattern's kind and compares with the
matches before (what a matcher without memory of partial matches must do). Rounds alternate
naive / Rete on the same network state; figures are min / median / max over the rounds, the
speed-up the per-round ratio of latencies. Both agree on every firing of the naive updates
(checked). ``--curve``: Rete alone at each size, with the tokens each update created or
removed (the matches it touched) next to its latency.

Target: at 10 000 facts and 200 rules, Rete updates >= 20x faster than naive (median).
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import _harness as H  # noqa: E402
from bollydog.rules.naive import NaiveMatcher  # noqa: E402
from bollydog.rules import network as rete  # noqa: E402
from bollydog.rules.network import ReteNetwork  # noqa: E402
from bollydog.rules.patterns import Not, Pattern, Rule  # noqa: E402
from bollydog.state.objects import Change, StateObject  # noqa: E402

TARGET = 20.0
SITES = 50
ZONES = 20


def make_rules(count: int) -> list[Rule]:
    rules = []
    for i in range(count):
        device = Pattern("device", f"zone=z{i % ZONES},env=prod",
                         [f"spec.temperature > {50 + i % 50}", "spec.site == $site"], name="d")
        if i % 4 == 0:
            when: list[Pattern | Not] = [device, Pattern("site", where=["key == $site", "spec.open == true"])]
        elif i % 4 == 1:
            when = [device, Not(Pattern("maintenance", where=["spec.site == $site"]))]
        else:
            when = [device]
        rules.append(Rule(f"r{i}", when, salience=i % 3))
    return rules


class Facts:
    """The seeded fact stream: the initial objects, then one update after another."""

    def __init__(self, devices: int, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.devices = devices
        self.version = 0

    def _next(self) -> int:
        self.version += 1
        return self.version

    def device(self, i: int) -> StateObject:
        rng = self.rng
        return StateObject(
            kind="device", key=f"d{i}", version=self._next(),
            labels={"env": rng.choice(["prod", "dev", "staging"]), "zone": f"z{rng.randrange(ZONES)}"},
            spec={"temperature": rng.randrange(100), "site": f"s{rng.randrange(SITES)}"},
        )

    def initial(self) -> list[StateObject]:
        sites = [StateObject(kind="site", key=f"s{i}", version=self._next(), spec={"open": i % 5 != 0})
                 for i in range(SITES)]
        maintenance = [StateObject(kind="maintenance", key=f"m{i}", version=self._next(), spec={"site": f"s{i}"})
                       for i in range(0, SITES, 7)]
        return [*sites, *maintenance, *(self.device(i) for i in range(self.devices))]

    def update(self, current: dict[tuple[str, str], StateObject]) -> StateObject:
        key = ("device", f"d{self.rng.randrange(self.devices)}")
        old = current[key]
        return old.model_copy(update={"version": self._next(),
                                      "spec": {**old.spec, "temperature": self.rng.randrange(100)}})


class TokenCounter:
    """Counts tokens made and removed: the matches an update touched."""

    def __init__(self) -> None:
        self.count = 0
        self._token_init = rete.Token.__init__
        self._remove = rete.remove_token

    def __enter__(self) -> "TokenCounter":
        counter, token_init, remove = self, self._token_init, self._remove

        def counted_init(token, *args):  # type: ignore[no-untyped-def]
            counter.count += 1
            token_init(token, *args)

        def counted_remove(token):  # type: ignore[no-untyped-def]
            counter.count += 1
            remove(token)

        rete.Token.__init__ = counted_init  # type: ignore[method-assign]
        rete.remove_token = counted_remove
        return self

    def __exit__(self, *exc: object) -> None:
        rete.Token.__init__ = self._token_init  # type: ignore[method-assign]
        rete.remove_token = self._remove


def build(devices: int, rules: list[Rule], with_naive: bool) -> tuple[Facts, ReteNetwork, NaiveMatcher | None, float]:
    facts = Facts(devices)
    network = ReteNetwork(rules)
    naive = NaiveMatcher(rules) if with_naive else None
    started = time.perf_counter()
    for fact in facts.initial():
        network.insert(fact)
    network.fire_all()
    elapsed = time.perf_counter() - started
    if naive is not None:
        for fact in network.facts.values():
            naive.apply(Change(type="ADDED", object=fact))
        naive.fire()
    return facts, network, naive, elapsed


def rete_round(facts: Facts, network: ReteNetwork, naive: NaiveMatcher | None, n: int) -> float:
    """Seconds per update over ``n`` updates (the naive matcher follows, untimed)."""
    updates = [facts.update(network.facts) for _ in range(n)]
    gc.collect()
    started = time.perf_counter()
    for fact in updates:
        network.update(fact)
        network.fire_all()
    elapsed = time.perf_counter() - started
    if naive is not None:
        for fact in updates:
            naive.apply(Change(type="MODIFIED", object=fact))
        naive.fire()  # keeps its "previous matches" in step, so its next round compares fairly
    return elapsed / n


def naive_round(facts: Facts, network: ReteNetwork, naive: NaiveMatcher, n: int) -> float:
    """Seconds per update over ``n`` naive updates; Rete applies the same ones and must agree."""
    total = 0.0
    for _ in range(n):
        fact = facts.update(network.facts)
        gc.collect()
        started = time.perf_counter()
        naive.apply(Change(type="MODIFIED", object=fact))
        expected = naive.fire()
        total += time.perf_counter() - started
        network.update(fact)
        got = [a.identity for a in network.fire_all()]
        if got != expected:
            raise AssertionError(f"Rete and naive disagree on {fact.ref}: {got} != {expected}")
    return total / n


def main(args: argparse.Namespace) -> None:
    out = H.Output()
    H.pin_self(args.cpu)
    out(H.machine(["pydantic", "pydantic-core"]))
    out(f"{H.pinning_note({'this process (both sides)': args.cpu})}; {args.rounds} alternating rounds "
        f"(naive: {args.naive_updates} updates, Rete: {args.updates} updates per round)")
    rules = make_rules(args.rules)
    facts, network, naive, built = build(args.facts, rules, with_naive=True)
    assert naive is not None
    out(f"{args.facts:,} devices + {len(network.facts) - args.facts} other objects, {len(rules)} rules, "
        f"{len(network.alphas)} alpha nodes; building the network: {built:.2f} s")
    rete_round(facts, network, naive, 200)  # warm-up
    rete_times, naive_times = [], []
    for _ in range(args.rounds):
        naive_times.append(naive_round(facts, network, naive, args.naive_updates))
        rete_times.append(rete_round(facts, network, naive, args.updates))
    ratios = [n / r for n, r in zip(naive_times, rete_times)]
    out(f"{'side':<8} {H.triple_header('update latency, us: min / median / max', 10)}  "
        f"{H.triple_header('updates/s: min / median / max', 10)}")
    for name, times in (("naive", naive_times), ("Rete", rete_times)):
        out(f"{name:<8} {H.triple([t * 1e6 for t in times], ',.1f', 10)}  {H.triple([1 / t for t in times], ',.1f', 10)}")
    out(f"speed-up (naive / Rete latency, per round): {H.triple(ratios, ',.0f', 8)}")
    if args.curve:
        out("Rete alone, same rules, per fact count (tokens: made + removed per update, the matches touched):")
        out(f"{'facts':>8} {H.triple_header('update latency, us', 9)}  {'tokens/update':>13}  build s")
        for size in args.curve:
            facts_c, network_c, _, built_c = build(size, rules, with_naive=False)
            rete_round(facts_c, network_c, None, 200)
            times = [rete_round(facts_c, network_c, None, args.updates) for _ in range(args.rounds)]
            with TokenCounter() as counter:
                rete_round(facts_c, network_c, None, args.updates)
            out(f"{size:>8,} {H.triple([t * 1e6 for t in times], ',.1f', 9)}  "
                f"{counter.count / args.updates:>13.2f}  {built_c:7.2f}")
            del facts_c, network_c
    speedup = statistics.median(ratios)
    out(f"Target: Rete >= {TARGET:.0f}x naive at {args.facts:,} facts and {len(rules)} rules (median): "
        f"{speedup:,.0f}x -> {'met' if speedup >= TARGET else 'NOT met'}")
    if args.write_docs:
        H.write_docs("Rules", INTRO, out)


INTRO = """`benchmarks/rules.py`: one random device's temperature changes, then the agenda fires; the
Rete network (`update` + `fire_all`) against the naive matcher (every rule re-evaluated against
every object of its kinds, then compared with the matches before), on the same facts and
rules, rounds alternating, both agreeing on every firing. The curve runs Rete alone at each
fact count, with the tokens each update made or removed."""


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--facts", type=int, default=10_000)
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--updates", type=int, default=2000, help="Rete updates per round")
    parser.add_argument("--naive-updates", type=int, default=2, help="naive updates per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--curve", type=lambda s: [int(x) for x in s.split(",") if x], default=[])
    parser.add_argument("--cpu", type=int, default=H.SERVER_CPU)
    parser.add_argument("--write-docs", action="store_true")
    main(parser.parse_args())
