"""The L2 network drivers: bridges and taps (``base.py``, ``linux.py``, ``fake.py``)."""
