"""What a run measures: sizes, durations, concurrencies. `--quick` is a smoke run for CI."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from bench.world import Sizes


@dataclass
class Config:
    databases: list[str] = field(default_factory=lambda: ["sqlite", "postgresql"])
    final: Sizes = field(default_factory=lambda: Sizes(100_000, 200_000, 1_000_000))
    steps: list[int] = field(default_factory=lambda: [10_000, 100_000, 1_000_000])
    concurrency: list[int] = field(default_factory=lambda: [1, 16, 64])
    send_seconds: float = 15
    read_seconds: float = 5
    ceiling_seconds: int = 10
    repeat: int = 3
    read_samples: int = 200  # distinct users / threads whose pages are read
    send_pairs: int = 2000  # distinct (sender, recipient) pairs the sends cycle through
    workers: int = 2
    loadgen: str = "auto"  # auto | wrk | python
    check: bool = True  # verify the schema's invariants after seeding and after the sends
    quick: bool = False

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def quick_config() -> Config:
    return Config(
        final=Sizes(500, 1_000, 5_000),
        steps=[1_000, 5_000],
        send_seconds=2,
        read_seconds=1,
        ceiling_seconds=2,
        repeat=1,
        read_samples=30,
        send_pairs=300,
        quick=True,
    )
