"""The L3 network drivers: routers, SNAT and floating IPs (``base.py``, ``linux.py``,
``fake.py``)."""
