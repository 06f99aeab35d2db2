"""devicemon's code behind the triggers, in rooms (docs/architecture.md has the map):

core/        the pure domain: no I/O
adapters/    Azure services and tables, over the SDKs
sources/     where observations come from: delta sync, subscription, notifications
processing/  one device change end to end (the pipeline)
consumers/   what alerts drive: Teams, remediation
views/       what operators read: fleet, device JSON, report, health

At the top: settings, logs, retry and telemetry (support every room may use) and runtime, the
wiring that builds the clients and hands them out. Imports flow one way; tests/test_layout.py
fails on a back-arrow. Nothing here imports azure.functions or local/.
"""
