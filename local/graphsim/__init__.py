"""graphsim: a Microsoft Graph tenant simulator for devicemon's tests, demo and benchmarks.

See README.md in this folder. Entry points: `python -m local.graphsim --port PORT`,
`GraphSimServer` (current event loop), `SimThread` (own thread), and the admin clients in
`local.graphsim.admin`.
"""

from __future__ import annotations

from .server import GraphSimServer, SimThread

__all__ = ["GraphSimServer", "SimThread"]
