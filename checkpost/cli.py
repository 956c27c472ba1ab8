"""The single `checkpost` entry point.

Subcommands live in the module that owns their concern and are imported only when chosen:
`checkpost verify CODE` must start in well under half a second, so nothing here may import
OpenCV, the MQTT clients or FastAPI at module level. Each command module exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a callable taking the
parsed namespace and returning the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# (command, module that registers it, one-line help). The module is imported lazily: only
# the chosen command's module is loaded, except for `checkpost --help`.
COMMANDS: list[tuple[str, str, str]] = [
    (
        "verify",
        "checkpost.commands.verify",
        "verify codes (text, images or stdin) and print verdicts",
    ),
    ("trust", "checkpost.commands.trust", "build and show signed trust lists"),
    ("issuer", "checkpost.commands.issuer", "create a test issuer (keys and a signed trust list)"),
    ("issue", "checkpost.commands.issue", "mint HP1/SR1/tube/box codes with the test issuer"),
    ("policy", "checkpost.commands.policy", "check and show policy files"),
    ("demo", "checkpost.commands.demo", "run the demonstration"),
    ("bench", "checkpost.commands.bench", "benchmarks with same-run baselines"),
    (
        "scan",
        "checkpost.hardware.commands.scan",
        "decode codes from image files with the station decoder",
    ),
    ("corpus", "checkpost.hardware.commands.corpus", "generate seeded camera-frame corpora"),
    ("hw", "checkpost.hardware.commands.hw", "check hardware on the bench"),
    ("rules", "checkpost.rules.commands", "CertLogic business rules: test rule folders"),
    ("hub", "checkpost.hub.commands", "run the hub"),
    ("edge", "checkpost.edge.commands", "run a station unit"),
]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="checkpost",
        description="Checkpoint and sampling-table units, and the hub that verifies them.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module, help_text in COMMANDS:
        if only is not None and name != only:
            sub.add_parser(name, help=help_text, add_help=False)
            continue
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if only is not None:
                raise
            p = sub.add_parser(name, help=f"{help_text} (unavailable: {exc.name} not installed)")
            p.set_defaults(func=_unavailable(name, exc))
            continue
        mod.register(sub)
    return parser


def _unavailable(name: str, exc: Exception):
    def run(_args: argparse.Namespace) -> int:
        print(f"checkpost {name}: unavailable in this installation ({exc})", file=sys.stderr)
        return 2

    return run


def _version() -> str:
    from checkpost import __version__

    return f"checkpost {__version__}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Build only the chosen command's parser, so a command's start-up pays for its own imports.
    chosen = next((a for a in argv if not a.startswith("-")), None)
    known = {name for name, _, _ in COMMANDS}
    parser = build_parser(chosen if chosen in known else None)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
