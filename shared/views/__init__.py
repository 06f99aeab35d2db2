"""Operator views: the fleet, device JSON for the read API and the CLI, the HTML report, health.
They use the core and the adapters' records."""
