"""The core: devicemon's domain, pure. Device facts and their evaluation, reason codes and their
wording, queue messages, alert events and their parsing, table rows. No I/O and no Azure SDK:
it imports nothing outside the standard library and itself (tests/test_layout.py)."""
