"""Policy: parameters (`model`), rule sets compiled into a versioned bundle (`bundle`), and
the pure decision function (`engine`) that units and the hub share."""

from checkpost.policy.bundle import Policy, PolicyError, build_policy, load_policy
from checkpost.policy.engine import Verdict, decide, station_for
from checkpost.policy.model import Parameters, load_parameters

__all__ = [
    "Parameters",
    "Policy",
    "PolicyError",
    "Verdict",
    "build_policy",
    "decide",
    "load_parameters",
    "load_policy",
    "station_for",
]
