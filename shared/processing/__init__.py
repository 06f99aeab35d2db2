"""Processing: one device change through evaluation, storage and alerting (the pipeline). Uses
the core and, through protocols, the adapters."""
