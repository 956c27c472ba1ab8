"""The station's pin map (BCM numbering), validated before any pin is touched.

A wrong pin map on a Pi can hold a gate relay open or short an output to a button, so
every problem is reported at once, each with its field and value, and nothing starts.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

# BCM GPIO numbers on the 40-pin header of a Pi 4 / Pi 5 (0 and 1 are the HAT EEPROM bus).
HEADER_BCM = frozenset(range(2, 28))
# Header physical pin of each BCM number, for WIRING.md and error messages.
PHYSICAL = {
    2: 3,
    3: 5,
    4: 7,
    17: 11,
    27: 13,
    22: 15,
    10: 19,
    9: 21,
    11: 23,
    5: 29,
    6: 31,
    13: 33,
    19: 35,
    26: 37,
    14: 8,
    15: 10,
    18: 12,
    23: 16,
    24: 18,
    25: 22,
    8: 24,
    7: 26,
    12: 32,
    16: 36,
    20: 38,
    21: 40,
}
RESERVED = {
    14: "UART TX (serial console / thermometer)",
    15: "UART RX (serial console / thermometer)",
}


class PinMapError(ValueError):
    """Raised with every problem of a pin map, one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid GPIO pin map:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class PinMap:
    """BCM numbers of each station part; ``None`` when the part is not fitted."""

    green: int | None = 17
    red: int | None = 27
    amber: int | None = 22
    buzzer: int | None = 18
    relay: int | None = 23
    button: int | None = 24
    illumination: int | None = 25
    relay_active_low: bool = True  # most opto-isolated relay boards switch on a low input
    button_pull_up: bool = True  # button to ground, internal pull-up: pressed reads 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PinMap:
        """Build from config, refusing unknown keys (a typo must not leave a part unwired)."""
        names = {f.name for f in fields(cls)}
        problems = [
            f"{k}: unknown pin name (known: {', '.join(sorted(names))})"
            for k in data
            if k not in names
        ]
        if problems:
            raise PinMapError(problems)
        pm = cls(**data)
        pm.validate()
        return pm

    def outputs(self) -> dict[str, int]:
        return {
            k: v
            for k in ("green", "red", "amber", "buzzer", "relay", "illumination")
            if (v := getattr(self, k)) is not None
        }

    def inputs(self) -> dict[str, int]:
        return {} if self.button is None else {"button": self.button}

    def validate(self, allow_reserved: bool = False) -> None:
        problems: list[str] = []
        used: dict[int, str] = {}
        for name, pin in {**self.outputs(), **self.inputs()}.items():
            if isinstance(pin, bool) or not isinstance(pin, int):
                problems.append(f"{name}: {pin!r} is not a BCM GPIO number")
                continue
            if pin not in HEADER_BCM:
                problems.append(
                    f"{name}: BCM {pin} is not a header GPIO (use BCM 2-27, not "
                    f"physical pin numbers)"
                )
                continue
            if pin in RESERVED and not allow_reserved:
                problems.append(f"{name}: BCM {pin} is {RESERVED[pin]}")
            if pin in used:
                problems.append(f"{name}: BCM {pin} is already used by {used[pin]}")
            else:
                used[pin] = name
        if problems:
            raise PinMapError(problems)
