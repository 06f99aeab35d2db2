"""Consumers of alerts: Teams cards (with noise control) and opt-in Intune remediation. They use
the core and the adapters, never the sources or the processing that raise the alerts."""
