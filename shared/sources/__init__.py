"""Sources of observations: the delta sync, the Graph subscription's upkeep and the change
notifications' triage. They use the core and the adapters."""
