"""checkpost: checkpoint and sampling-table units, and the hub that verifies what they scan.

The package is one namespace with four parts:

- ``checkpost`` (this folder): the core both sides share — code formats, policy, message
  schemas, configuration, the test issuer and the command line.
- ``checkpost.edge`` (folder ``edge/``): the agent on each Raspberry Pi.
- ``checkpost.hub`` (folder ``hub/``): the verification service.
- ``checkpost.hardware`` (folder ``hardware/``): drivers and simulators.
"""

__version__ = "0.1.0"
